import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
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
  /** `redis://…`, or `rediss://…` when started with TLS (no password in it). */
  url: string;
  port: number;
  /** With TLS: the CA (PEM file) that signed the server's certificate. */
  caFile?: string;
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

export interface RedisStartOptions {
  /** `requirepass`: clients must AUTH. */
  password?: string;
  /** Serve TLS only (`--tls-port`), with a certificate for 127.0.0.1 from a throwaway CA. */
  tls?: boolean;
  /** Extra `redis-server` arguments (e.g. `--cluster-enabled yes`). */
  args?: string[];
  port?: number;
}

export async function startRedis(options: RedisStartOptions = {}): Promise<TestRedis> {
  const port = options.port ?? (await freePort());
  const certs = options.tls ? makeCertificates() : undefined;
  // A replica's full sync writes an RDB file even with saving off: keep it out of the cwd.
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-redis-'));
  const args = [
    '--dir',
    dataDir,
    ...(certs
      ? [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          certs.cert,
          '--tls-key-file',
          certs.key,
          '--tls-ca-cert-file',
          certs.ca,
          '--tls-auth-clients',
          'no',
        ]
      : ['--port', String(port)]),
    ...(options.password === undefined ? [] : ['--requirepass', options.password]),
    ...(options.args ?? []),
  ];
  const probe = certs ? { tls: true, ca: readFileSync(certs.ca, 'utf8') } : { tls: false };
  let child = await launch(port, args, probe);

  const waitExit = (process: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (process.exitCode !== null || process.signalCode !== null) return resolve();
      process.once('exit', () => resolve());
      process.kill(signal);
    });

  return {
    url: `${certs ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    caFile: certs?.ca,
    stop: async () => {
      await waitExit(child, 'SIGTERM');
      if (certs) rmSync(certs.dir, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
    kill: () => waitExit(child, 'SIGKILL'),
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async restart() {
      await waitExit(child, 'SIGKILL');
      child = await launch(port, args, probe);
    },
  };
}

/** Whether this redis-server was built with TLS (Debian's is). */
export function redisHasTls(): boolean {
  // Listening nowhere, it exits at once; without TLS support `tls-port` is a bad directive.
  const out = spawnSync('redis-server', ['--port', '0', '--tls-port', '0'], {
    encoding: 'utf8',
    timeout: 5000,
  });
  if (!/Bad directive/i.test(`${out.stdout}${out.stderr}`)) return true;
  const reason = 'this redis-server is built without TLS (Debian and Ubuntu builds have it)';
  if (process.env.CI === 'true') throw new Error(`${reason}: required when CI=true`);
  console.warn(`SKIPPED: ${reason}`);
  return false;
}

/** A CA and a 127.0.0.1 server certificate made with openssl in a temporary directory. */
function makeCertificates(): { dir: string; ca: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-redis-tls-'));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=Test Redis CA',
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
  );
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    at('server.key'),
    '-out',
    at('server.csr'),
  );
  execFileSync('sh', [
    '-c',
    `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ${at('ext.cnf')}`,
  ]);
  openssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    at('ext.cnf'),
    '-out',
    at('server.pem'),
  );
  return { dir, ca: at('ca.pem'), cert: at('server.pem'), key: at('server.key') };
}

async function launch(
  port: number,
  args: string[],
  probe: { tls: boolean; ca?: string },
): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      ...args,
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
      '--loglevel',
      'warning',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`redis-server exited (${child.exitCode}): ${stderr}`);
    if (await ping(port, probe)) return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within 10 s: ${stderr}`);
}

/** Any answer to PING (PONG, or NOAUTH when a password is set) means the server is up. */
function ping(
  port: number,
  probe: { tls: boolean; ca?: string } = { tls: false },
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: Socket = probe.tls
      ? tlsConnect({ host: '127.0.0.1', port, ca: probe.ca, servername: 'localhost' })
      : createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once(probe.tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(/^(\+PONG|-NOAUTH)/.test(data.toString())));
  });
}
