import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadDevCluster, type DevCluster } from '../../src/dev-cluster/index.js';
import { freePort } from './net.js';

const TESSERA_BIN = resolve(import.meta.dirname, '../../bin/tessera.js');
const REPO_POLICIES = resolve(import.meta.dirname, '../../policies');

/** `tessera serve` as a child process, its JSON log lines collected as they come. */
export interface BrokerProcess {
  child: ChildProcess;
  url: string;
  dir: string;
  dev: DevCluster;
  /** Parsed JSON log lines (stdout), in order. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line whose `msg` matches, after `count - 1` earlier ones. */
  waitForLog(
    msg: string | RegExp,
    options?: { count?: number; timeoutMs?: number },
  ): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/**
 * Start `tessera serve --config <file> …args` with the dev cluster (its key made here first, so
 * the test can sign tokens), local keys and the example policies in a fresh directory.
 */
export async function startBrokerProcess(
  options: {
    config?: Record<string, unknown>;
    args?: string[];
    command?: string[];
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /** Its own process group (as a shell job is), so a test can signal the whole group. */
    processGroup?: boolean;
  } = {},
): Promise<BrokerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-process-'));
  const port = await freePort();
  const devCluster = {
    name: 'dev',
    issuer: 'https://dev-cluster.tessera.local',
    keyDir: join(dir, 'dev-cluster'),
  };
  const config = {
    listen: { host: '127.0.0.1', port },
    audience: 'tessera',
    devCluster,
    policies: REPO_POLICIES,
    keys: { provider: 'local', dir: join(dir, 'keys') },
    x509: { dir: join(dir, 'ca') },
    // Load from one test client on one address measures the broker, not the per-address limit.
    rateLimit: { enabled: false },
    logging: { level: 'info' },
    ...options.config,
  };
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const dev = await loadDevCluster(devCluster, 'tessera');
  const command = options.command ?? [process.execPath, TESSERA_BIN];
  const child = spawn(
    command[0] as string,
    [...command.slice(1), 'serve', '--config', configFile, ...(options.args ?? [])],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.processGroup ?? false,
      cwd: options.cwd ?? dir,
      env: { ...process.env, ...options.env },
    },
  );
  const logs: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a partial or non-JSON line: not a log record
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    // 'close', not 'exit': the last lines a process writes before it exits may still be in the
    // pipe when it is reaped, and the tests read them from `logs`.
    child.once('close', (code, signal) => done({ code, signal })),
  );
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    for (const wake of waiters) wake();
  });

  const waitForLog: BrokerProcess['waitForLog'] = (msg, { count = 1, timeoutMs = 60_000 } = {}) =>
    new Promise((resolvePromise, reject) => {
      const matches = (entry: Record<string, unknown>) =>
        typeof msg === 'string' ? entry.msg === msg : msg.test(String(entry.msg));
      const check = () => {
        const found = logs.filter(matches);
        if (found.length >= count) {
          cleanup();
          resolvePromise(found[count - 1] as Record<string, unknown>);
        } else if (hasExited) {
          cleanup();
          reject(new Error(`broker exited before logging ${String(msg)}: ${stderr.slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `no log line ${String(msg)} within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  return {
    child,
    url: `http://127.0.0.1:${port}`,
    dir,
    dev,
    logs,
    waitForLog,
    exited,
    async stop() {
      if (options.processGroup && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // The group is gone already.
        }
      }
      if (!hasExited) {
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
