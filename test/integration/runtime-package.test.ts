import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadDevCluster } from '../../src/dev-cluster/index.js';
import { JWT_TYPE, TOKEN_EXCHANGE } from '../support/app.js';
import { freePort } from '../support/net.js';

/**
 * The image's runtime stage, reproduced without a container engine (see Dockerfile): pack the
 * package, install it with production dependencies only (pinned by the lockfile) into an empty
 * directory, and run `tessera serve` as uid 10001 with a root-owned, read-only config.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const UID = 10001;

function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'switching to a non-root user needs root';
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'setpriv (util-linux) not found';
  }
  return undefined;
}

function skipRuntime(): boolean {
  const reason = cannotRun();
  if (!reason) return false;
  if (process.env.CI === 'true')
    throw new Error(`the runtime-package test is required under CI=true: ${reason}`);
  console.warn(`[skipped] runtime package: ${reason}`);
  return true;
}

const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));

describe.skipIf(skipRuntime())('runtime package (the Dockerfile runtime stage)', () => {
  let work: string;
  let app: string;
  let child: ChildProcess | undefined;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'tessera-runtime-'));
    chmodSync(work, 0o755);
    const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tarball = join(
      work,
      (JSON.parse(packed) as Array<{ filename: string }>)[0]?.filename as string,
    );
    app = join(work, 'app');
    mkdirSync(app);
    execFileSync('tar', ['-xzf', tarball, '-C', app, '--strip-components=1']);
    copyFileSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    // The packed package is already built: installing it must not try to build it again.
    execFileSync('npm', ['pkg', 'delete', 'scripts.prepare'], { cwd: app, stdio: 'ignore' });
    execFileSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: app,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 600_000,
    });
    execFileSync('chmod', ['-R', 'a+rX,go-w', app]);
  }, 660_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((done) => child?.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok/production-dependencies-only', () => {
    const installed = readdirSync(join(app, 'node_modules'));
    for (const devOnly of ['vitest', 'typescript', 'eslint', 'autocannon', 'supertest', 'node'])
      expect(installed, devOnly).not.toContain(devOnly);
    expect(installed).toContain('hono');
  });

  it('ok/the-package-holds-compiled-javascript-and-no-typescript-sources', () => {
    const sources = files(app).filter(
      (file) =>
        !file.startsWith('node_modules/') && file.endsWith('.ts') && !file.endsWith('.d.ts'),
    );
    expect(sources).toEqual([]);
    expect(existsSync(join(app, 'dist'))).toBe(true);
  });

  it(
    'ok/serves-as-a-non-root-user-with-a-read-only-config-and-exchanges-a-token',
    { timeout: 120_000 },
    async () => {
      const etc = join(work, 'etc');
      const state = join(work, 'state');
      mkdirSync(join(etc, 'policies'), { recursive: true });
      cpSync(join(ROOT, 'policies'), join(etc, 'policies'), { recursive: true });
      mkdirSync(state, { mode: 0o700 });
      chownSync(state, UID, UID);
      const port = await freePort();
      const devCluster = {
        name: 'dev',
        issuer: 'https://dev-cluster.tessera.local',
        keyDir: join(state, 'dev-cluster'),
      };
      const configFile = join(etc, 'config.yaml');
      writeFileSync(
        configFile,
        stringify({
          listen: { host: '127.0.0.1', port },
          audience: 'tessera',
          devCluster,
          policies: join(etc, 'policies'),
          keys: { provider: 'local', dir: join(state, 'keys') },
          x509: { dir: join(state, 'ca') },
        }),
      );
      execFileSync('chmod', ['-R', 'a+rX,a-w', etc]);
      expect(statSync(configFile).uid).toBe(0);

      const bin = (
        JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { bin: { tessera: string } }
      ).bin.tessera;
      child = spawn(
        'setpriv',
        [
          `--reuid=${UID}`,
          `--regid=${UID}`,
          '--clear-groups',
          '--',
          process.execPath,
          join(app, bin),
          'serve',
          '--config',
          configFile,
        ],
        {
          cwd: state,
          env: { PATH: process.env.PATH, HOME: state, NODE_ENV: 'production' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const url = `http://127.0.0.1:${port}`;
      await expect
        .poll(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status, {
          timeout: 90_000,
          interval: 250,
        })
        .toBe(200)
        .catch((error: unknown) => {
          throw new Error(`broker did not become ready: ${output.slice(-2000)} (${String(error)})`);
        });
      const status = readFileSync(`/proc/${child.pid as number}/status`, 'utf8');
      const uidLine = status.split('\n').find((line) => line.startsWith('Uid:')) ?? '';
      // setpriv execs node: the process serving is the non-root one.
      expect(uidLine.split(/\s+/).slice(1, 5)).toEqual([
        String(UID),
        String(UID),
        String(UID),
        String(UID),
      ]);

      const dev = await loadDevCluster(devCluster, 'tessera');
      const response = await fetch(`${url}/v1/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: TOKEN_EXCHANGE,
          subject_token: await dev.signToken({
            namespace: 'default',
            serviceAccount: 'demo',
            audience: 'tessera',
          }),
          subject_token_type: JWT_TYPE,
          resource: 'demo',
        }),
      });
      expect(response.status).toBe(200);
      const { access_token: token } = (await response.json()) as { access_token: string };
      const jwks = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: url });
      expect(payload.sub).toBe('system:serviceaccount:default:demo');
      // Keys were created by, and belong to, the non-root user.
      expect(statSync(join(state, 'keys')).uid).toBe(UID);
    },
  );

  it(
    'ok/without-the-optional-pkcs11js: the sdk and local keys work, pkcs11 keys stop the start with the reason',
    { timeout: 120_000 },
    () => {
      // What npm leaves where the addon cannot be built (no C++ toolchain): no pkcs11js at all.
      const slim = join(work, 'app-without-pkcs11js');
      cpSync(app, slim, { recursive: true });
      rmSync(join(slim, 'node_modules', 'pkcs11js'), { recursive: true, force: true });
      const cli = join(slim, 'dist/cli/main.js');
      const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
        spawnSync(process.execPath, args, {
          cwd: work,
          encoding: 'utf8',
          timeout: 60_000,
          env: { PATH: process.env.PATH, HOME: work, ...env },
        });
      const config = (name: string, keys: Record<string, unknown>) => {
        const file = join(work, `${name}.yaml`);
        writeFileSync(
          file,
          stringify({
            listen: { host: '127.0.0.1', port: 0 },
            audience: 'tessera',
            devCluster: {
              name: 'dev',
              issuer: 'https://dev-cluster.tessera.local',
              keyDir: join(work, `${name}-dev-cluster`),
            },
            policies: join(ROOT, 'policies'),
            keys,
            x509: { dir: join(work, `${name}-ca`) },
          }),
        );
        return file;
      };

      const sdk = run([
        '--input-type=module',
        '-e',
        'const sdk = await import(process.argv[1]); console.log(typeof sdk.createClient);',
        join(slim, 'dist/sdk/index.js'),
      ]);
      expect(sdk.stderr).toBe('');
      expect(sdk.stdout.trim()).toBe('function');

      const local = config('local', { provider: 'local', dir: join(work, 'local-keys') });
      const generated = run([cli, 'keys', 'generate', '--config', local]);
      expect(generated.stderr).toBe('');
      expect(generated.status).toBe(0);
      expect(generated.stdout).toContain('ES256');

      const hsm = config('hsm', {
        provider: 'pkcs11',
        // Any readable file: the start stops before a module is loaded.
        module: process.execPath,
        tokenLabel: 'tessera',
        pinEnv: 'TESSERA_TEST_PIN',
      });
      const checked = run([cli, 'config', 'validate', '--config', hsm], {
        TESSERA_TEST_PIN: '1234',
      });
      expect(checked.status).not.toBe(0);
      expect(`${checked.stdout}${checked.stderr}`).toContain(
        'keys.provider: pkcs11 needs the optional package pkcs11js',
      );
      const served = run([cli, 'serve', '--config', hsm], { TESSERA_TEST_PIN: '1234' });
      expect(served.status).toBe(1);
      const output = `${served.stdout}${served.stderr}`;
      expect(output).toContain('keys.provider pkcs11 needs the optional package pkcs11js');
      expect(output).not.toMatch(/\n\s+at /);
      expect(output).not.toContain('1234');
    },
  );
});
