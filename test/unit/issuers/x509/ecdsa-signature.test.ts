import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ecdsaDerToRaw, ecdsaRawToDer } from '../../../../src/issuers/x509/ecdsa-signature.js';

interface Vector {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
const suite = JSON.parse(
  readFileSync('/work/shared/fixtures/wycheproof/ecdsa_secp256r1_sha256_test.json', 'utf8'),
) as {
  testGroups: Array<{ publicKeyDer: string; tests: Vector[] }>;
};

/** Strict DER → raw, then a P1363 verification: the path CSR signatures take. */
function verifies(publicKeyDer: string, vector: Vector): boolean {
  const key = createPublicKey({
    key: Buffer.from(publicKeyDer, 'hex'),
    format: 'der',
    type: 'spki',
  });
  let raw: Uint8Array;
  try {
    raw = ecdsaDerToRaw(Buffer.from(vector.sig, 'hex'), 32);
  } catch {
    return false;
  }
  return verify('sha256', Buffer.from(vector.msg, 'hex'), { key, dsaEncoding: 'ieee-p1363' }, raw);
}

const cases = suite.testGroups.flatMap((group) =>
  group.tests.map((vector) => ({ publicKeyDer: group.publicKeyDer, vector })),
);

describe('ECDSA DER ↔ raw conversion (Wycheproof ecdsa_secp256r1_sha256)', () => {
  it('has the vectors', () => {
    expect(cases.length).toBe(484);
  });

  it.each(
    cases.map(
      (entry) =>
        [`${entry.vector.result}/tc${entry.vector.tcId}-${entry.vector.comment}`, entry] as const,
    ),
  )('%s', (_name, { publicKeyDer, vector }) => {
    expect(verifies(publicKeyDer, vector)).toBe(vector.result === 'valid');
    if (vector.result === 'valid') {
      // A valid DER signature survives the round trip byte for byte (DER is canonical).
      expect(
        Buffer.from(ecdsaRawToDer(ecdsaDerToRaw(Buffer.from(vector.sig, 'hex'), 32))).toString(
          'hex',
        ),
      ).toBe(vector.sig);
    }
  });
});

describe('ecdsaDerToRaw', () => {
  // CSR checks hand OpenSSL the signature bytes as received once this parse accepts them.
  it('ok/every-accepted-signature-is-already-canonical-der', () => {
    let accepted = 0;
    for (const { vector } of cases) {
      const der = Buffer.from(vector.sig, 'hex');
      let raw: Uint8Array;
      try {
        raw = ecdsaDerToRaw(der, 32);
      } catch {
        continue;
      }
      accepted += 1;
      expect(Buffer.from(ecdsaRawToDer(raw)).equals(der)).toBe(true);
    }
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('ecdsaRawToDer', () => {
  it.each([
    ['ok/small-integers', '00'.repeat(31) + '01' + '00'.repeat(31) + '7f', '300602010102017f'],
    [
      'ok/high-bit-gets-zero-prefix',
      '80' + '00'.repeat(31) + '01'.repeat(32),
      `3045022100${'80' + '00'.repeat(31)}0220${'01'.repeat(32)}`,
    ],
  ])('%s', (_name, raw, der) => {
    expect(Buffer.from(ecdsaRawToDer(Buffer.from(raw, 'hex'))).toString('hex')).toBe(der);
  });

  it.each([
    ['fail/odd-length', '00'.repeat(63)],
    ['fail/zero-r', '00'.repeat(32) + '01'.repeat(32)],
    ['fail/zero-s', '01'.repeat(32) + '00'.repeat(32)],
  ])('%s', (_name, raw) => {
    expect(() => ecdsaRawToDer(Buffer.from(raw, 'hex'))).toThrow();
  });
});
