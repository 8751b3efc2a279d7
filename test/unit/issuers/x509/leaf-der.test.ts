import { X509Certificate, createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCsr, type VerifiedCsr } from '../../../../src/issuers/x509/csr.js';
import { children, expectTlv, oid, sequence } from '../../../../src/issuers/x509/der.js';
import {
  SIGNATURE_ALGORITHMS,
  authorityKeyIdentifierExtension,
  leafEncoder,
  x509Signer,
} from '../../../../src/issuers/x509/leaf-der.js';
import type { LeafProfile } from '../../../../src/issuers/x509/pipeline.js';
import { EC_P256, RSA_2048, opensslCsr, tempDir, testSigningKey } from '../../../support/x509.js';

/**
 * The leaf is written into buffers of precomputed size: these check the bytes against what
 * OpenSSL (node:crypto's X509Certificate) reads back, including long-form DER lengths.
 */
const workspace = tempDir();
const NOW = Date.parse('2026-06-01T00:00:00Z') / 1000;
const caKey = testSigningKey('ES256');
const caName = sequence(
  Uint8Array.of(0x31, 0x0e, 0x30, 0x0c, ...oid('2.5.4.3'), 0x0c, 0x05, ...Buffer.from('Test1')),
);
const encode = leafEncoder({
  signatureAlgorithm: SIGNATURE_ALGORITHMS.ES256!,
  issuerName: caName,
  authorityKeyIdentifier: authorityKeyIdentifierExtension(new Uint8Array(20).fill(7)),
  sign: x509Signer(caKey),
});
const caPublicKey = createPublicKey({ key: caKey.publicJwk, format: 'jwk' });
let ec: VerifiedCsr;
let rsa: VerifiedCsr;

beforeAll(() => {
  ec = verifyCsr(opensslCsr(workspace.dir, EC_P256).csrPem);
  rsa = verifyCsr(opensslCsr(workspace.dir, RSA_2048).csrPem);
});
afterAll(() => workspace.cleanup());

const profile = (overrides: Partial<LeafProfile> = {}): LeafProfile => ({
  uris: ['spiffe://example.org/ns/prod/sa/orders'],
  dnsNames: ['orders.prod.svc'],
  notBefore: NOW - 30,
  notAfter: NOW + 3600,
  isCa: false,
  keyUsage: { digitalSignature: true, keyEncipherment: false },
  extKeyUsage: ['serverAuth', 'clientAuth'],
  ...overrides,
});

const sanOf = (certificate: X509Certificate) => certificate.subjectAltName?.split(', ') ?? [];

describe('leafEncoder', () => {
  const manyNames = Array.from({ length: 40 }, (_, i) => `host-${i}.orders.prod.svc`);
  const longId = `spiffe://example.org/${Array.from({ length: 60 }, (_, i) => `segment-${i}`).join('/')}`;
  it.each([
    ['ok/short-lengths', () => ec, profile()],
    ['ok/no-dns-names', () => ec, profile({ dnsNames: [] })],
    ['ok/long-form-lengths', () => ec, profile({ uris: [longId], dnsNames: manyNames })],
    [
      'ok/rsa-subject-key',
      () => rsa,
      profile({ keyUsage: { digitalSignature: true, keyEncipherment: true } }),
    ],
  ])('%s', async (_name, subject, leaf) => {
    const der = await encode(leaf, subject());
    const certificate = new X509Certificate(der);
    expect(certificate.verify(caPublicKey)).toBe(true);
    expect(certificate.subject).toBeUndefined();
    expect(certificate.issuer).toBe('CN=Test1');
    expect(certificate.ca).toBe(false);
    expect(sanOf(certificate)).toEqual([
      ...leaf.uris.map((uri) => `URI:${uri}`),
      ...leaf.dnsNames.map((name) => `DNS:${name}`),
    ]);
    expect(Date.parse(certificate.validFrom) / 1000).toBe(leaf.notBefore);
    expect(Date.parse(certificate.validTo) / 1000).toBe(leaf.notAfter);
    expect(certificate.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(
      Buffer.from(subject().spki).equals(
        certificate.publicKey.export({ type: 'spki', format: 'der' }),
      ),
    ).toBe(true);
    // A 128-bit positive serial: 17 content bytes, the first 0x00.
    expect(certificate.serialNumber).toMatch(/^[89A-F][0-9A-F]{31}$/);
    // Every TLV is minimal DER and exactly fills its parent.
    const outer = expectTlv(der, 0, 0x30);
    expect(outer.end).toBe(der.length);
    expect(children(der, outer).map((part) => part.tag)).toEqual([0x30, 0x30, 0x03]);
  });

  it('ok/serials-differ', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 300; i++)
      serials.add(new X509Certificate(await encode(profile(), ec)).serialNumber);
    expect(serials.size).toBe(300);
  });

  it('ok/each-leaf-carries-its-own-validity', async () => {
    for (const notAfter of [NOW + 3600, NOW + 600, NOW + 3600]) {
      const certificate = new X509Certificate(await encode(profile({ notAfter }), ec));
      expect(Date.parse(certificate.validTo) / 1000).toBe(notAfter);
    }
  });

  it('fail/non-ascii-name-refused-not-truncated', async () => {
    // U+0161 would become 0x61 ("a") if truncated to a byte.
    await expect(encode(profile({ dnsNames: ['orders.prod.svc\u0161'] }), ec)).rejects.toThrow(
      'an IA5String holds ASCII only',
    );
  });

  it('fail/ca-profile', async () => {
    await expect(encode(profile({ isCa: true }), ec)).rejects.toThrow(
      'refusing to encode a CA leaf',
    );
  });
});
