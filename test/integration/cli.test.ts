import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REPO_POLICIES } from '../support/app.js';
import { containing } from '../support/matchers.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/tessera.js');

let dir: string;
let configFile: string;
let url: string;
let server: ChildProcess;
let serverOutput = '';

const tessera = (...args: string[]) =>
  run(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, TESSERA_CONFIG: configFile },
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  configFile = join(dir, 'tessera.yaml');
  writeFileSync(
    configFile,
    stringify({
      issuer: url,
      listen: { host: '127.0.0.1', port },
      audience: 'tessera',
      devCluster: { keyDir: join(dir, 'dev-cluster') },
      policies: REPO_POLICIES,
      keys: { provider: 'local', dir: join(dir, 'keys') },
      x509: { dir: join(dir, 'ca') },
    }),
  );
  server = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
  server.stderr?.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
  const deadline = Date.now() + 30_000;
  while (!serverOutput.includes('Tessera listening')) {
    if (Date.now() > deadline || server.exitCode !== null)
      throw new Error(`serve did not start: ${serverOutput}`);
    await new Promise((done) => setTimeout(done, 100));
  }
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    await new Promise<void>((done) => {
      server.once('exit', () => done());
      server.kill('SIGTERM');
    });
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('tessera command', () => {
  it('serve prints where it listens and how to try it', () => {
    expect(serverOutput).toContain(`Tessera listening on ${url}`);
    expect(serverOutput).toContain('npx tessera dev-token');
  });

  it('dev-token prints a projected-token-shaped JWT', async () => {
    const { stdout } = await tessera(
      'dev-token',
      '--namespace',
      'default',
      '--service-account',
      'web',
      '--ttl',
      '120',
    );
    const claims = decodeJwt(stdout.trim());
    expect(claims).toMatchObject({
      iss: 'https://dev-cluster.tessera.local',
      sub: 'system:serviceaccount:default:web',
      aud: ['tessera'],
      'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'web' } },
    });
    expect(claims.exp! - claims.iat!).toBe(120);
  });

  it('dev-token refuses a bad ttl', async () => {
    await expect(
      tessera('dev-token', '--namespace', 'default', '--service-account', 'web', '--ttl', 'soon'),
    ).rejects.toMatchObject({ code: 1 });
  });

  it('the README quickstart: dev-token, then an exchange for role demo', async () => {
    const { stdout: token } = await tessera(
      'dev-token',
      '--namespace',
      'default',
      '--service-account',
      'demo',
    );
    const response = await fetch(`${url}/v1/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        resource: 'demo',
        subject_token: token.trim(),
      }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string };
    expect(decodeJwt(body.access_token)).toMatchObject({
      iss: url,
      tessera: { role: 'demo', cluster: 'dev' },
    });
  });

  it('exchange and agent --once use the SDK against the running broker', async () => {
    const { stdout: token } = await tessera(
      'dev-token',
      '--namespace',
      'default',
      '--service-account',
      'demo',
    );
    const tokenFile = join(dir, 'sa-token');
    writeFileSync(tokenFile, token);
    const { stdout: issued } = await tessera(
      'exchange',
      '--endpoint',
      url,
      '--token-file',
      tokenFile,
      '--resource',
      'demo',
    );
    expect(decodeJwt(issued.trim()).sub).toBe('system:serviceaccount:default:demo');

    const out = join(dir, 'agent-out');
    await tessera(
      'agent',
      '--endpoint',
      url,
      '--token-file',
      tokenFile,
      '--resource',
      'demo',
      '--out',
      out,
      '--once',
    );
    const written = readFileSync(join(out, 'token'), 'utf8');
    expect(written.endsWith('\n')).toBe(false);
    expect(decodeJwt(written).tessera).toEqual({ role: 'demo', cluster: 'dev' });
    expect(statSync(join(out, 'token')).mode & 0o777).toBe(0o600);
  });

  it('exchange --type x509 prints the certificate and writes the key only to --key-out', async () => {
    const { stdout: token } = await tessera(
      'dev-token',
      '--namespace',
      'default',
      '--service-account',
      'demo',
    );
    const tokenFile = join(dir, 'sa-token-x509');
    writeFileSync(tokenFile, token);
    const keyFile = join(dir, 'svid-key.pem');
    const { stdout } = await tessera(
      'exchange',
      '--endpoint',
      url,
      '--token-file',
      tokenFile,
      '--resource',
      'demo',
      '--type',
      'x509',
      '--key-out',
      keyFile,
    );
    expect(stdout).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(stdout).not.toContain('PRIVATE KEY');
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  it('exchange reports a refusal and exits 1', async () => {
    const { stdout: token } = await tessera(
      'dev-token',
      '--namespace',
      'kube-system',
      '--service-account',
      'demo',
    );
    const tokenFile = join(dir, 'denied-token');
    writeFileSync(tokenFile, token);
    const failure = tessera(
      'exchange',
      '--endpoint',
      url,
      '--token-file',
      tokenFile,
      '--resource',
      'demo',
    );
    await expect(failure).rejects.toMatchObject({ code: 1, stderr: containing('access_denied') });
    await expect(failure).rejects.toMatchObject({ stderr: containing(`(${url}/v1/token)`) });
  });

  it('a start-up failure with Redis configured exits 1 instead of hanging on the Redis client', async () => {
    const broken = join(dir, 'broken-policies');
    writeFileSync(
      join(dir, 'broken.yaml'),
      stringify({
        issuer: url,
        audience: 'tessera',
        policies: broken,
        keys: { provider: 'local', dir: join(dir, 'keys-broken') },
        cache: { redis: `redis://127.0.0.1:${await freePort()}` },
      }),
    );
    const env = { ...process.env, TESSERA_CACHE_KEY: 'cli-test-cache-secret-0123456789abcdef' };
    await expect(
      run(process.execPath, [BIN, 'serve', '--config', join(dir, 'broken.yaml')], {
        timeout: 20_000,
        env,
      }),
    ).rejects.toMatchObject({
      code: 1,
      killed: false,
      stderr: containing('cannot read policy directory'),
    });
  });

  it('a bad config file names the field and exits 1', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'issuer: https://sts.example.com\naudience: x\nclusters:\n  - name: prod\n    issuer: http://oidc.example.com\n',
    );
    await expect(run(process.execPath, [BIN, 'serve', '--config', bad])).rejects.toMatchObject({
      code: 1,
      stderr: containing('clusters[0].issuer: must be an https URL'),
    });
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8'),
    ) as { version: string };
    const { stdout } = await tessera('--version');
    expect(stdout.trim()).toBe(version);
  });

  it('config validate: exit 0 for a good file, 1 naming the field for a bad one', async () => {
    const { stdout } = await tessera('config', 'validate', '--config', configFile);
    expect(stdout).toBe(
      `${configFile} is valid: 0 cluster(s) + dev cluster, 2 role(s), keys local\n`,
    );
    const bad = join(dir, 'validate-bad.yaml');
    writeFileSync(
      bad,
      stringify({
        issuer: url,
        audience: 'tessera',
        policies: REPO_POLICIES,
        clusters: [
          { name: 'prod', issuer: 'https://oidc.example.com', caFile: join(dir, 'missing-ca.pem') },
        ],
      }),
    );
    await expect(tessera('config', 'validate', '--config', bad)).rejects.toMatchObject({
      code: 1,
      stderr: containing(`clusters[0].caFile: cannot read ${join(dir, 'missing-ca.pem')}: ENOENT`),
    });
  });

  it('status prints readiness in words; an unreachable broker exits 1 naming the URL', async () => {
    const { stdout } = await tessera('status', '--endpoint', url);
    expect(stdout.split('\n')).toEqual(
      expect.arrayContaining([
        'ready: the broker is serving token exchanges',
        'signing keys: usable',
        'policies: 2 role(s) loaded',
        'cache: memory',
      ]),
    );
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(tessera('status', '--endpoint', closed)).rejects.toMatchObject({
      code: 1,
      stderr: containing(`unreachable: ${closed}/readyz`),
    });
  });

  it('exchange against an unreachable broker names the endpoint and the cause', async () => {
    const tokenFile = join(dir, 'sa-token-unreachable');
    writeFileSync(tokenFile, 'x.y.z');
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(
      tessera('exchange', '--endpoint', closed, '--token-file', tokenFile),
    ).rejects.toMatchObject({
      code: 1,
      stderr: containing(`tessera: cannot reach ${closed}/v1/token: connect ECONNREFUSED`),
    });
  });
});
