import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configSchema } from '../src/config/index.js';
import type { Fixtures } from './fixtures.js';
import { BROKER_CLI, freePort, startProcess, stopProcess, waitForHttp } from './support.js';

/**
 * A broker as operators run it: `tessera serve` in a child process of its own, with a config
 * file, logging at info (one audit line per exchange) to a discarded stdout.
 */
const CLI = BROKER_CLI;

export type KeysConfig =
  | { provider: 'local'; dir: string }
  | { provider: 'pkcs11'; module: string; tokenLabel: string; pinEnv: string };

export interface BrokerOptions {
  name: string;
  keys: KeysConfig;
  redisUrl?: string;
  workers?: number;
  env?: NodeJS.ProcessEnv;
  /** Write a V8 CPU profile of the broker here (`BENCH_PROFILE`). */
  profileDir?: string;
}

export interface Broker {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Whether this CLI's `serve` takes `--workers` (added with multi-process serving). */
export function cliSupportsWorkers(): boolean {
  try {
    return execFileSync(process.execPath, [CLI, 'serve', '--help'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).includes('--workers');
  } catch {
    return false;
  }
}

/**
 * The bench is one client sending as fast as it can: per-address rate limiting is turned off
 * where the config has that switch (`rateLimit.enabled`), and left unset where it is opt-in.
 */
function rateLimitOff(): Record<string, unknown> {
  const candidate = {
    issuer: 'https://bench.test',
    audience: 'bench',
    rateLimit: { enabled: false },
  };
  return configSchema.safeParse(candidate).success ? { rateLimit: { enabled: false } } : {};
}

/** The secret replicas authenticate shared-cache entries with, where the config asks for one. */
const CACHE_KEY_ENV = { TESSERA_CACHE_KEY: randomBytes(32).toString('base64url') };

export async function startBroker(fixtures: Fixtures, options: BrokerOptions): Promise<Broker> {
  const port = await freePort();
  const config = {
    issuer: `http://127.0.0.1:${port}`,
    listen: { host: '127.0.0.1', port },
    audience: 'tessera',
    clusters: [
      { name: 'bench', issuer: fixtures.issuer, jwksUri: fixtures.jwksUri, allowInsecure: true },
    ],
    policies: join(fixtures.dir, 'policies'),
    keys: { ...options.keys, algorithms: ['ES256', 'RS256'] },
    x509: { trustDomain: 'example.org', dir: join(fixtures.dir, `ca-${options.keys.provider}`) },
    ...(options.redisUrl && { cache: { redis: options.redisUrl } }),
    ...rateLimitOff(),
    logging: { level: 'info' },
  };
  const file = join(fixtures.dir, `config-${options.name}.yaml`);
  writeFileSync(file, stringify(config));
  const nodeArgs = options.profileDir
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${options.profileDir}`,
        `--cpu-prof-name=${options.name}.cpuprofile`,
      ]
    : (process.env.BENCH_NODE_ARGS?.split(' ') ?? []);
  const args = [
    ...nodeArgs,
    CLI,
    'serve',
    '--config',
    file,
    ...(options.workers ? ['--workers', String(options.workers)] : []),
  ];
  const child = startProcess(args, { ...CACHE_KEY_ENV, ...options.env });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/readyz`, 60_000, child);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { url, child, stop: () => stopProcess(child) };
}

/** One exchange before measuring: a refusal here means the scenario is misconfigured. */
export async function checkExchange(url: string, body: string): Promise<void> {
  const response = await fetch(`${url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  if (response.status !== 200)
    throw new Error(
      `broker refused the bench exchange: ${response.status} ${await response.text()}`,
    );
}
