import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { packAndInstall, ROOT, systemNode, type InstalledPackage } from '../support/package.js';

const run = promisify(execFile);

/** What a program written against the published package would do, as ESM and as CommonJS. */
const ESM_CALLER = `
import { createClient, ExchangeError, NetworkError } from 'tessera-sts/sdk';
const client = createClient({ endpoint: process.env.ENDPOINT, tokenFile: process.env.TOKEN_FILE, resource: 'demo' });
const token = await client.getToken();
const certificate = await client.getCertificate();
console.log(JSON.stringify({
  sub: JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).sub,
  certificate: certificate.certificatePem.startsWith('-----BEGIN CERTIFICATE-----'),
  errors: [typeof ExchangeError, typeof NetworkError],
}));
`;
const CJS_CALLER = `
const { createClient, ExchangeError, NetworkError } = require('tessera-sts/sdk');
const client = createClient({ endpoint: process.env.ENDPOINT, tokenFile: process.env.TOKEN_FILE, resource: 'demo' });
client.getToken().then(async (token) => {
  const certificate = await client.getCertificate();
  console.log(JSON.stringify({
    sub: JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).sub,
    certificate: certificate.certificatePem.startsWith('-----BEGIN CERTIFICATE-----'),
    errors: [typeof ExchangeError, typeof NetworkError],
  }));
});
`;
const TS_CALLER = `
import { createClient, ExchangeError, type ClientOptions } from 'tessera-sts/sdk';
const options: ClientOptions = { endpoint: 'https://tessera.example.com', tokenFile: '/var/run/secrets/tokens/tessera', resource: 'demo' };
export async function token(): Promise<string> {
  try {
    return await createClient(options).getToken();
  } catch (error) {
    if (error instanceof ExchangeError) return error.code;
    throw error;
  }
}
`;
const TS_WRONG_CALLER = `
import { createClient } from 'tessera-sts/sdk';
export const client = createClient({ endpoint: 8080, tokenFile: '/t' });
`;

/** Packages a sidecar must never load: the broker's HTTP server, Kubernetes client, PKCS#11 binding, Redis client. */
const BROKER_ONLY =
  /\/node_modules\/(hono|@hono\/node-server|@kubernetes\/client-node|pkcs11js|ioredis)\//;

let installed: InstalledPackage;
let t: TestApp;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  [installed, t] = await Promise.all([packAndInstall(), startTestApp()]);
  const tokenFile = join(installed.dir, 'sa-token');
  writeFileSync(tokenFile, await t.devToken('default', 'demo'));
  writeFileSync(join(installed.dir, 'caller.mjs'), ESM_CALLER);
  writeFileSync(join(installed.dir, 'caller.cjs'), CJS_CALLER);
  env = { ...process.env, ENDPOINT: t.url, TOKEN_FILE: tokenFile, NODE_NO_WARNINGS: '1' };
}, 600_000);

afterAll(async () => {
  await t?.close();
  if (installed) rmSync(installed.dir, { recursive: true, force: true });
});

const EXPECTED = {
  sub: 'system:serviceaccount:default:demo',
  certificate: true,
  errors: ['function', 'function'],
};

describe('the packed tarball, installed with production dependencies only', () => {
  it('ships compiled JavaScript with types and no TypeScript source', async () => {
    const { stdout } = await run('tar', ['-tzf', installed.tarball]);
    const files = stdout.split('\n').filter(Boolean);
    expect(files).toContain('package/dist/sdk/index.js');
    expect(files).toContain('package/dist/sdk/index.d.ts');
    expect(files).toContain('package/dist/cli/main.js');
    expect(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
    const manifest = JSON.parse(
      readFileSync(join(installed.dir, 'node_modules/tessera-sts/package.json'), 'utf8'),
    ) as Record<string, unknown>;
    expect(manifest.devDependencies).toBeDefined();
    expect(Object.keys(manifest.dependencies as object)).not.toContain('tsx');
  });

  it.each([
    ['import', 'caller.mjs'],
    ['require()', 'caller.cjs'],
  ])('Node 24: the SDK exchanges a token through %s', async (_how, file) => {
    const { stdout } = await run(process.execPath, [file], { cwd: installed.dir, env });
    expect(JSON.parse(stdout)).toEqual(EXPECTED);
  });

  it.each([
    ['import', 'caller.mjs'],
    ['require()', 'caller.cjs'],
  ])("the machine's Node: the SDK exchanges a token through %s", async (_how, file) => {
    const node = await systemNode();
    if (!node) return;
    const { stdout } = await run(node.path, [file], { cwd: installed.dir, env });
    expect(JSON.parse(stdout)).toEqual(EXPECTED);
  });

  it('a TypeScript caller type-checks against the shipped declarations, and a wrong option does not', async () => {
    const project = join(installed.dir, 'ts');
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'caller.mts'), TS_CALLER);
    writeFileSync(join(project, 'wrong.mts'), TS_WRONG_CALLER);
    const tsconfig = (file: string) => ({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules/@types')],
      },
      files: [file],
    });
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig('caller.mts')));
    writeFileSync(join(project, 'tsconfig.wrong.json'), JSON.stringify(tsconfig('wrong.mts')));
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const [right, wrong] = await Promise.all(
      ['tsconfig.json', 'tsconfig.wrong.json'].map((config) =>
        run(process.execPath, [tsc, '-p', config], { cwd: project }).then(
          () => ({ ok: true, stdout: '' }),
          (error: { stdout: string }) => ({ ok: false, stdout: String(error.stdout) }),
        ),
      ),
    );
    expect(right).toEqual({ ok: true, stdout: '' });
    expect(wrong?.stdout).toMatch(
      /wrong\.mts\(3,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/,
    );
  }, 240_000);

  it('the tessera command runs from the installed bin without a TypeScript loader', async () => {
    const path = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
    const { stdout } = await run(join(installed.dir, 'node_modules/.bin/tessera'), ['--version'], {
      env: { ...env, PATH: path },
    });
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(stdout.trim()).toBe(version);
  });

  it.each([
    ['--version', ['--version']],
    ['--help', ['--help']],
    [
      'exchange',
      ['exchange', '--endpoint', '$ENDPOINT', '--token-file', '$TOKEN_FILE', '--resource', 'demo'],
    ],
    [
      'agent --once',
      [
        'agent',
        '--endpoint',
        '$ENDPOINT',
        '--token-file',
        '$TOKEN_FILE',
        '--resource',
        'demo',
        '--once',
        '--out',
        '$OUT',
      ],
    ],
  ])('tessera %s loads none of the broker', async (name, args) => {
    const record = join(installed.dir, `modules-${name.replace(/\W+/g, '-')}.txt`);
    writeFileSync(record, '');
    const values: Record<string, string> = {
      $ENDPOINT: t.url,
      $TOKEN_FILE: env.TOKEN_FILE as string,
      $OUT: join(installed.dir, 'agent-out'),
    };
    await run(
      process.execPath,
      [
        '--import',
        join(ROOT, 'test/support/record-modules.mjs'),
        join(installed.dir, 'node_modules/tessera-sts/dist/cli/main.js'),
        ...args.map((arg) => values[arg] ?? arg),
      ],
      { cwd: installed.dir, env: { ...env, TESSERA_RECORD_MODULES: record } },
    );
    const modules = readFileSync(record, 'utf8').split('\n').filter(Boolean);
    // The recorder sees the command's own modules (else this test could not fail)…
    expect(modules.some((url) => url.includes('/node_modules/commander/'))).toBe(true);
    if (name !== '--version' && name !== '--help')
      expect(modules.some((url) => url.includes('/tessera-sts/dist/sdk/'))).toBe(true);
    // …and nothing of the broker.
    expect(
      modules.filter(
        (url) =>
          BROKER_ONLY.test(url) ||
          /\/tessera-sts\/dist\/(app|sts|verifiers|keys|cache|trust-policies)\b/.test(url),
      ),
    ).toEqual([]);
  });
});
