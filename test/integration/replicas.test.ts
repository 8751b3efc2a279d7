import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig, type Config } from '../../src/config/index.js';
import { loadDevCluster, type DevCluster } from '../../src/dev-cluster/index.js';
import { createX509Authority } from '../../src/issuers/x509/index.js';
import { createKeyProvider } from '../../src/keys/index.js';
import { silentLogger } from '../../src/observability/index.js';
import { exchangeForm, JWT_TYPE, TOKEN_EXCHANGE } from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';
import { freePort, requireBinary, startRedis, type TestRedis } from '../support/redis.js';

/**
 * Three broker processes share one Redis and one key directory (as a ReadWriteMany volume would),
 * behind a client-side round robin. Under load, one replica is killed and restarted, Redis is
 * restarted, and a signing key rotation takes effect on the restarted replica.
 */
const BIN = resolve(import.meta.dirname, '../../bin/tessera.js');
const ISSUER = 'https://sts.replicas.example.com';
const WORKERS = 6;

interface Replica {
  port: number;
  url: string;
  process?: ChildProcess;
  output: string;
}

interface Answer {
  replica: number;
  status: number;
  token?: string;
  error?: unknown;
}

const available = requireBinary('redis-server');
let dir: string;
let configFile: string;
let config: Config;
let redis: TestRedis;
let dev: DevCluster;
const replicas: Replica[] = [];

async function startReplica(replica: Replica): Promise<void> {
  replica.output = '';
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    // The shared cache's entries are authenticated with a secret every replica holds.
    env: {
      ...process.env,
      TESSERA_PORT: String(replica.port),
      TESSERA_CACHE_KEY: 'replicas-test-shared-secret-0123456789',
    },
  });
  replica.process = child;
  child.stdout?.on('data', (chunk: Buffer) => (replica.output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (replica.output += chunk.toString()));
  // Generous: a process that transpiles its sources at start is slow on a busy machine.
  const deadline = Date.now() + 150_000;
  while (!replica.output.includes('Tessera listening')) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`replica on ${replica.port} did not start: ${replica.output}`);
    await sleep(50);
  }
}

async function killReplica(replica: Replica): Promise<void> {
  const child = replica.process;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((done) => {
    child.once('exit', () => done());
    child.kill('SIGKILL');
  });
}

/** The shared key records, as every replica reads them. */
function keyRecords(): Array<{
  kid: string;
  alg: string;
  state: string;
  activateAt?: number;
  createdAt: number;
  activatedAt?: number;
}> {
  return (
    JSON.parse(readFileSync(join(config.keys.dir, 'state.json'), 'utf8')) as {
      keys: ReturnType<typeof keyRecords>;
    }
  ).keys;
}

type StateFile = { keys: Array<Record<string, unknown>> };
const stateFile = () => join(config.keys.dir, 'state.json');
/** Rewrites the shared records the way the store does: a new file renamed over the old one. */
function editRecords(edit: (key: Record<string, unknown>) => void): void {
  const state = JSON.parse(readFileSync(stateFile(), 'utf8')) as StateFile;
  for (const key of state.keys) edit(key);
  writeFileSync(`${stateFile()}.edit`, JSON.stringify(state));
  renameSync(`${stateFile()}.edit`, stateFile());
}

describe.skipIf(!available)('replicas under fault', () => {
  let before: { active: string; next: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-replicas-'));
    redis = await startRedis();
    configFile = join(dir, 'tessera.yaml');
    writeFileSync(
      configFile,
      stringify({
        issuer: ISSUER,
        listen: { host: '127.0.0.1', port: 0 },
        audience: 'tessera',
        devCluster: { keyDir: './dev-cluster' },
        policies: writePolicies(ENDPOINT_ROLES),
        keys: {
          provider: 'local',
          dir: './keys',
          algorithms: ['ES256'],
          rotation: { every: '1m' },
        },
        x509: { dir: './ca' },
        cache: { redis: redis.url },
        // One load generator on one address: the replicas' answers, not the per-address limit.
        rateLimit: { enabled: false },
        logging: { level: 'warn' },
      }),
    );
    config = loadConfig({ file: configFile, env: {} });
    // What an operator prepares before scaling out: the dev cluster's key, the first signing key
    // and its successor, and the CA, so replicas starting together share them.
    dev = await loadDevCluster(
      config.devCluster as NonNullable<Config['devCluster']>,
      config.audience,
    );
    const keys = await createKeyProvider(config.keys, {
      logger: silentLogger(),
      autoRotate: false,
    });
    await keys.rotate();
    await createX509Authority({
      provider: keys,
      config: config.x509,
      keysDir: config.keys.dir,
      logger: silentLogger(),
    });
    await keys.close();
    // As if the broker had run for ten minutes: the successor has been published long enough.
    const now = Math.floor(Date.now() / 1000);
    editRecords((key) => {
      key.createdAt = now - 600;
      if (key.state === 'active') key.activatedAt = now - 600;
    });
    before = {
      active: keyRecords().find((key) => key.state === 'active')?.kid as string,
      next: keyRecords().find((key) => key.state === 'next')?.kid as string,
    };
    for (let index = 0; index < 3; index += 1) {
      const port = await freePort();
      replicas.push({ port, url: `http://127.0.0.1:${port}`, output: '' });
    }
    await Promise.all(replicas.map(startReplica));
  }, 400_000);

  afterAll(async () => {
    await Promise.all(replicas.map(killReplica));
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ok/no-failed-answer, tokens verify everywhere, unique jti, one active key per algorithm', async () => {
    const answers: Answer[] = [];
    const activeCounts: number[] = [];
    let running = true;
    let turn = 0;

    // The shared records, sampled throughout: never two active (or two next) keys for ES256.
    const sampler = (async () => {
      while (running) {
        try {
          const records = keyRecords().filter((key) => key.alg === 'ES256');
          activeCounts.push(records.filter((key) => key.state === 'active').length);
          expect(records.filter((key) => key.state === 'next').length).toBeLessThanOrEqual(1);
        } catch (error) {
          // A record file is replaced by rename, so a read sees the old or the new one; anything else fails.
          if (!(error instanceof SyntaxError)) throw error;
        }
        await sleep(50);
      }
    })();

    const worker = async (): Promise<void> => {
      while (running) {
        const index = turn++ % replicas.length;
        const replica = replicas[index] as Replica;
        const body = exchangeForm({
          grant_type: TOKEN_EXCHANGE,
          subject_token: await dev.signToken({
            namespace: 'orders',
            serviceAccount: 'order-service',
            audience: 'tessera',
          }),
          subject_token_type: JWT_TYPE,
          resource: 'orders-reader',
        });
        let response: Response;
        try {
          response = await fetch(`${replica.url}/v1/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body,
            signal: AbortSignal.timeout(10_000),
          });
        } catch {
          // No answer: the replica is down (refused, or reset when killed). The client moves on.
          await sleep(20);
          continue;
        }
        const json = (await response.json().catch(() => ({}))) as {
          access_token?: string;
          error?: string;
          error_description?: string;
        };
        answers.push({
          replica: index,
          status: response.status,
          token: json.access_token,
          ...(response.status === 200 ? {} : { error: json }),
        });
      }
    };
    const load = Promise.all(Array.from({ length: WORKERS }, worker));

    const third = replicas[2] as Replica;
    await sleep(1500);
    // Time passes: the successor is due in two seconds. The restarted replica's start-up sync (or
    // another replica's periodic one, whichever comes first) activates it under the shared lock.
    const activateAt = Math.floor(Date.now() / 1000) + 2;
    editRecords((key) => {
      if (key.state === 'next') key.activateAt = activateAt;
    });
    await killReplica(third);
    await sleep(500);
    await redis.restart();
    await sleep(Math.max(0, activateAt * 1000 - Date.now() + 500));
    await startReplica(third);
    const answeredBeforeEnd = answers.length;
    await sleep(2500);
    running = false;
    await Promise.all([load, sampler]);

    expect(answers.length).toBeGreaterThan(answeredBeforeEnd);
    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    expect(new Set(answers.map((answer) => answer.replica))).toEqual(new Set([0, 1, 2]));

    const tokens = answers.map((answer) => answer.token as string);
    const jtis = tokens.map((token) => decodeJwt(token).jti);
    expect(new Set(jtis).size).toBe(tokens.length);

    // The rotation happened once, and the published records never held two active ES256 keys.
    expect(Math.max(...activeCounts)).toBe(1);
    expect(
      keyRecords()
        .filter((key) => key.alg === 'ES256' && key.state === 'active')
        .map((key) => key.kid),
    ).toEqual([before.next]);
    const kids = new Set(tokens.map((token) => decodeProtectedHeader(token).kid));
    expect(kids).toEqual(new Set([before.active, before.next]));

    const jwksOf = await Promise.all(
      replicas.map(
        async (replica) =>
          (await (await fetch(`${replica.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet,
      ),
    );
    for (const jwks of jwksOf) {
      const keySet = createLocalJWKSet(jwks);
      for (const token of tokens)
        await jwtVerify(token, keySet, { issuer: ISSUER, audience: 'https://vault.example.com' });
    }
  }, 300_000);
});

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
