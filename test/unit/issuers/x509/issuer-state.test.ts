import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createX509Authority } from '../../../../src/issuers/x509/index.js';
import { createSelfSignedCa } from '../../../../src/issuers/x509/ca-setup.js';
import { toPem } from '../../../../src/issuers/x509/der.js';
import { issuerStateFor } from '../../../../src/issuers/x509/issuer-state.js';
import type { KeyProvider, SigningKey } from '../../../../src/keys/types.js';
import { silentLogger } from '../../../../src/observability/index.js';
import { EC_P256, localKeyProvider, opensslCsr, tempDir } from '../../../support/x509.js';

/**
 * Leaves never outlive the CA's path to its root: the cap is the earliest notAfter of the CA
 * certificate and every certificate of its imported chain, not the CA certificate's alone.
 */
const workspace = tempDir();
const NOW = Date.parse('2026-06-01T00:00:00Z') / 1000;
const DAY = 86_400;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
let provider: KeyProvider;
let caKey: SigningKey;
let caPublicKey: webcrypto.CryptoKey;
let csr: string;

beforeAll(async () => {
  provider = await localKeyProvider(join(workspace.dir, 'keys'));
  caKey = await provider.namedKey('x509-ca', 'ES256');
  const { kty, crv, x, y } = caKey.publicJwk;
  caPublicKey = await webcrypto.subtle.importKey('jwk', { kty, crv, x, y }, ALGORITHM, true, [
    'verify',
  ]);
  csr = opensslCsr(workspace.dir, EC_P256).csrPem;
});
afterAll(async () => {
  await provider.close();
  workspace.cleanup();
});

interface Issuer {
  name: string;
  keys: webcrypto.CryptoKeyPair;
}
const issuerNamed = async (name: string): Promise<Issuer> => ({
  name,
  keys: await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']),
});

/** A CA certificate for `subject` valid until NOW + `days`, signed by `issuer` (itself when absent). */
async function caCertificate(
  subject: string,
  publicKey: webcrypto.CryptoKey,
  days: number,
  issuer?: Issuer,
  selfKey?: webcrypto.CryptoKey,
): Promise<Uint8Array> {
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: '01',
      subject: `CN=${subject}`,
      issuer: `CN=${issuer?.name ?? subject}`,
      notBefore: new Date((NOW - DAY) * 1000),
      notAfter: new Date((NOW + days * DAY) * 1000),
      publicKey,
      signingKey: issuer?.keys.privateKey ?? (selfKey as webcrypto.CryptoKey),
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      ],
    },
    webcrypto,
  );
  return new Uint8Array(certificate.rawData);
}

/** [name, days the Tessera CA is valid, the chain above it from issuer to root as [subject, days], expected cap] */
const cases: Array<[string, number, Array<[string, number]>, number]> = [
  ['ok/self-signed-root-caps-at-its-own-notafter', 30, [], NOW + 30 * DAY],
  ['ok/intermediate-under-a-longer-lived-root', 30, [['Enterprise Root', 60]], NOW + 30 * DAY],
  ['ok/intermediate-whose-root-expires-first', 30, [['Enterprise Root', 10]], NOW + 10 * DAY],
  [
    'ok/upper-intermediate-expires-first',
    30,
    [
      ['Issuing Sub CA', 5],
      ['Enterprise Root', 60],
    ],
    NOW + 5 * DAY,
  ],
  [
    'ok/root-expires-first-above-a-sub-ca',
    30,
    [
      ['Issuing Sub CA', 20],
      ['Enterprise Root', 7],
    ],
    NOW + 7 * DAY,
  ],
];

describe('issuerStateFor: leaf lifetime cap', () => {
  it.each(cases)('%s', async (name, caDays, above, expectedNotAfter) => {
    // Build from the root down: each certificate is signed by the one above it.
    const issuers = await Promise.all(above.map(([subject]) => issuerNamed(subject)));
    const chain: Uint8Array[] = [];
    for (let index = above.length - 1; index >= 0; index -= 1) {
      const [subject, days] = above[index] as [string, number];
      const self = issuers[index] as Issuer;
      chain.unshift(
        await caCertificate(
          subject,
          self.keys.publicKey,
          days,
          issuers[index + 1],
          self.keys.privateKey,
        ),
      );
    }
    const certificate =
      above.length === 0
        ? (
            await createSelfSignedCa({
              key: caKey,
              trustDomain: 'example.org',
              ttlSeconds: caDays * DAY,
              now: NOW,
            })
          ).certificate
        : await caCertificate(
            'Tessera intermediate CA example.org',
            caPublicKey,
            caDays,
            issuers[0],
          );

    expect(issuerStateFor({ certificate, chain }, caKey).validity.notAfter).toBe(expectedNotAfter);

    // And through the authority: a long-lived request is cut at the same instant.
    const dir = join(workspace.dir, name.replace(/\//g, '-'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ca.pem'), toPem(certificate));
    writeFileSync(join(dir, 'chain.pem'), chain.map((der) => toPem(der)).join(''));
    const authority = await createX509Authority({
      provider,
      config: { trustDomain: 'example.org', caTtl: DAY, dir },
      logger: silentLogger(),
      now: () => NOW * 1000,
      autoInit: false,
    });
    const issued = await authority.issue({
      csr,
      spiffeId: 'spiffe://example.org/ns/a/sa/b',
      dnsNames: [],
      ttlSeconds: 90 * DAY,
    });
    expect(issued.expiresAt).toBe(expectedNotAfter);
  });
});
