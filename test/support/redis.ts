import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePort } from './net.js';

export { freePort };

/** The shared-cache secret every test replica holds (entries are authenticated with a key derived from it). */
export const TEST_CACHE_SECRET = 'test-cache-secret-0123456789abcdef0123456789';

/**
 * A real `redis-server` for tests, on a free loopback port, with persistence off.
 * `kill()` (SIGKILL) and `pause()` (SIGSTOP: connected but silent, i.e. "slow") produce the
 * outages the Redis cache must survive; `restart()` brings it back on the same port.
 */
export interface TestRedis {
  url: string;
  port: number;
  /** Graceful stop (SIGTERM), waits for exit. */
  stop(): Promise<void>;
  /** SIGKILL: the connection drops without a goodbye. */
  kill(): Promise<void>;
  /** SIGSTOP: the socket stays open but nothing answers. */
  pause(): void;
  resume(): void;
  /** Start again on the same port (after stop or kill); waits for PONG. */
  restart(): Promise<void>;
}

/**
 * Whether `name` is on PATH. Missing under `CI=true`: throws, so the test file FAILS; elsewhere
 * warns with the reason and returns false so the caller can `describe.skipIf(!available)`.
 */
export function requireBinary(name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
  if (found) return true;
  const reason = `${name} is not installed (apt-get install ${name === 'redis-server' ? 'redis-server' : name})`;
  if (process.env.CI === 'true') throw new Error(`${reason}: required when CI=true`);
  console.warn(`SKIPPED: ${reason}`);
  return false;
}


export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child = await launch(port);

  const waitExit = (process: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (process.exitCode !== null || process.signalCode !== null) return resolve();
      process.once('exit', () => resolve());
      process.kill(signal);
    });

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => waitExit(child, 'SIGTERM'),
    kill: () => waitExit(child, 'SIGKILL'),
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async restart() {
      await waitExit(child, 'SIGKILL');
      child = await launch(port);
    },
  };
}

async function launch(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${stderr}`);
    if (await ping(port)) return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within 10 s: ${stderr}`);
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}
