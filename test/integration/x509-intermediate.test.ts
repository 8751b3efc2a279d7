import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig, type Config } from '../../src/config/index.js';
import { createX509Authority } from '../../src/issuers/x509/index.js';
import { registerCaCommands } from '../../src/cli/ca.js';
import type { KeyProvider } from '../../src/keys/types.js';
import { silentLogger } from '../../src/observability/index.js';
import {
  EC_P256,
  localKeyProvider,
  openssl,
  opensslCsr,
  tempDir,
  writeFiles,
} from '../support/x509.js';

/**
 * The enterprise-PKI pattern: Enterprise Root → Issuing Sub CA (both made with openssl here)
 * → Tessera's intermediate, issued for the provider-held key from `tessera ca csr`, then
 * `tessera ca import` and SVIDs that chain up to the enterprise root.
 */

const workspace = tempDir();
const path = (name: string) => join(workspace.dir, name);
let provider: KeyProvider;
let config: Config;

const CA_EXTENSIONS = [
  '[v3]',
  'basicConstraints=critical,CA:TRUE',
  'keyUsage=critical,keyCertSign,cRLSign',
  'subjectKeyIdentifier=hash',
  'authorityKeyIdentifier=keyid',
  '',
].join('\n');
const LEAF_EXTENSIONS = [
  '[v3]',
  'basicConstraints=critical,CA:FALSE',
  'keyUsage=critical,digitalSignature',
  '',
].join('\n');

function signWith(
  issuer: 'root' | 'sub',
  csrFile: string,
  outFile: string,
  extensions = CA_EXTENSIONS,
): void {
  writeFiles(workspace.dir, { 'ext.cnf': extensions });
  openssl([
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    path(`${issuer}.pem`),
    '-CAkey',
    path(`${issuer}.key`),
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    path('ext.cnf'),
    '-extensions',
    'v3',
    '-out',
    outFile,
  ]);
}

async function ca(...args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerCaCommands(
    program,
    () => config,
    () => Promise.resolve({ ...provider, close: () => Promise.resolve() }),
  );
  const writes: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    writes.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['node', 'tessera', 'ca', ...args]);
  } finally {
    spy.mockRestore();
  }
  return writes.join('');
}

beforeAll(async () => {
  provider = await localKeyProvider(path('keys'));
  config = parseConfig({
    issuer: 'https://sts.example.com',
    audience: 'tessera',
    keys: { provider: 'local', dir: path('keys') },
    x509: { trustDomain: 'example.org', dir: path('ca') },
  });
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-384',
    '-nodes',
    '-keyout',
    path('root.key'),
    '-subj',
    '/CN=Enterprise Root/O=Corp',
    '-days',
    '60',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    path('root.pem'),
  ]);
  openssl([
    'req',
    '-new',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    path('sub.key'),
    '-subj',
    '/CN=Issuing Sub CA/O=Corp',
    '-out',
    path('sub.csr'),
  ]);
  signWith('root', path('sub.csr'), path('sub.pem'));
  writeFiles(workspace.dir, {
    'chain.pem': readFileSync(path('sub.pem'), 'utf8') + readFileSync(path('root.pem'), 'utf8'),
  });
});
afterAll(async () => {
  await provider.close();
  workspace.cleanup();
});

describe('tessera ca csr + ca import', () => {
  it('ok/csr-is-for-the-provider-key-and-asks-for-a-ca', async () => {
    await ca('csr', '--out', path('tessera.csr'));
    const csr = new x509.Pkcs10CertificateRequest(readFileSync(path('tessera.csr'), 'utf8'));
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('CN=Tessera intermediate CA example.org, O=Tessera');
    const text = openssl(['req', '-in', path('tessera.csr'), '-noout', '-text']);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
    expect(text).toContain('URI:spiffe://example.org\n');
  });

  it.each([
    [
      'fail/not-a-ca-certificate',
      () => signWith('sub', path('tessera.csr'), path('bad.pem'), LEAF_EXTENSIONS),
      ['import', path('bad.pem'), '--chain', path('chain.pem')],
      'the certificate is not a CA certificate (basicConstraints CA:TRUE missing)',
    ],
    [
      'fail/certificate-for-another-key',
      () => signWith('sub', opensslCsrFile(), path('bad.pem')),
      ['import', path('bad.pem'), '--chain', path('chain.pem')],
      'the certificate is not for the x509-ca key of this key provider (public keys differ); make it from `tessera ca csr`',
    ],
    [
      'fail/chain-missing',
      () => signWith('sub', path('tessera.csr'), path('bad.pem')),
      ['import', path('bad.pem')],
      'no certificate in the chain issued "CN=Tessera intermediate CA example.org, O=Tessera"; pass its issuer chain up to the root with --chain',
    ],
    [
      'fail/chain-without-root',
      () => signWith('sub', path('tessera.csr'), path('bad.pem')),
      ['import', path('bad.pem'), '--chain', path('sub.pem')],
      'no certificate in the chain issued "CN=Issuing Sub CA, O=Corp"; pass its issuer chain up to the root with --chain',
    ],
  ])('%s', async (_name, prepare, args, message) => {
    prepare();
    await expect(ca(...args)).rejects.toThrow(message);
  });

  it('ok/import-then-issue-svids-chaining-to-the-enterprise-root', async () => {
    signWith('sub', path('tessera.csr'), path('tessera.pem'));
    const imported = await ca('import', path('tessera.pem'), '--chain', path('chain.pem'));
    expect(imported).toContain('(chain of 2 above it)');

    const authority = await createX509Authority({
      provider,
      config: config.x509,
      keysDir: config.keys.dir,
      logger: silentLogger(),
    });
    const svid = await authority.issue({
      csr: opensslCsr(workspace.dir, EC_P256).csrPem,
      spiffeId: 'spiffe://example.org/ns/a/sa/b',
      dnsNames: [],
      ttlSeconds: 600,
    });
    const pem = (name: string) => readFileSync(path(name), 'utf8');
    const normal = (text: string) => new x509.X509Certificate(text).toString('pem');
    expect(svid.fields.certificate_chain.slice(1).map(normal)).toEqual([
      normal(pem('tessera.pem')),
      normal(pem('sub.pem')),
    ]);
    expect(svid.fields.trust_bundle.map(normal)).toEqual([normal(pem('root.pem'))]);
    expect((await authority.trustBundle()).pem).toBe(svid.fields.trust_bundle.join(''));

    const files = writeFiles(workspace.dir, {
      'leaf.pem': svid.fields.certificate,
      'untrusted.pem': svid.fields.certificate_chain.slice(1).join(''),
    });
    expect(
      openssl([
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        path('root.pem'),
        '-untrusted',
        files['untrusted.pem']!,
        files['leaf.pem']!,
      ]),
    ).toBe(`${files['leaf.pem']}: OK\n`);
    // Without the intermediates the leaf does not verify: the chain is really needed.
    expect(() => openssl(['verify', '-CAfile', path('root.pem'), files['leaf.pem']!])).toThrow();

    const shown = await ca('show');
    expect(shown).toContain("key:         matches the local provider's x509-ca key");
    expect(shown).toContain('chain[1] (root):\nsubject:     CN=Enterprise Root, O=Corp');
  });
});

function opensslCsrFile(): string {
  return writeFiles(workspace.dir, { 'other.csr': opensslCsr(workspace.dir, EC_P256).csrPem })[
    'other.csr'
  ]!;
}
