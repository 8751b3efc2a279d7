import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, runAgent } from '../../src/sdk/index.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** The SDK and sidecar against the shipped `demo` role, which has an x509 profile. */
let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp();
  dir = mkdtempSync(join(tmpdir(), 'tessera-sdk-x509-'));
});
afterAll(async () => {
  await t?.close();
});

describe('sdk x509', () => {
  it('getCertificate returns an SVID for a key generated in the pod', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, await t.devToken('default', 'web'));
    const svid = await createClient({
      endpoint: t.url,
      tokenFile,
      resource: 'demo',
    }).getCertificate();
    const leaf = new X509Certificate(svid.certificatePem);
    expect(leaf.subjectAltName).toBe('URI:spiffe://example.org/ns/default/sa/web');
    const keyOfLeaf = leaf.publicKey.export({ format: 'der', type: 'spki' });
    const keyOfPod = createPublicKey(createPrivateKey(svid.privateKeyPem)).export({
      format: 'der',
      type: 'spki',
    });
    expect(Buffer.compare(keyOfLeaf, keyOfPod)).toBe(0);
    expect(svid.trustBundlePem).toHaveLength(1);
    expect(leaf.verify(new X509Certificate(svid.trustBundlePem[0] as string).publicKey)).toBe(true);
  });

  it('agent --once writes svid.pem, svid-key.pem (0600) and bundle.pem that openssl verifies', async () => {
    const tokenFile = join(dir, 'token-agent');
    writeFileSync(tokenFile, await t.devToken('default', 'api'));
    const out = join(dir, 'agent');
    await runAgent({ endpoint: t.url, tokenFile, resource: 'demo', out, type: 'x509', once: true });
    expect(statSync(join(out, 'svid-key.pem')).mode & 0o777).toBe(0o600);
    const verified = execFileSync(
      'openssl',
      [
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        join(out, 'bundle.pem'),
        join(out, 'svid.pem'),
      ],
      { encoding: 'utf8' },
    );
    expect(verified.trim()).toBe(`${join(out, 'svid.pem')}: OK`);
    expect(new X509Certificate(readFileSync(join(out, 'svid.pem'))).subjectAltName).toBe(
      'URI:spiffe://example.org/ns/default/sa/api',
    );
  });
});
