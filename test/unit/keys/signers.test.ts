import { generateKeyPairSync, sign } from 'node:crypto';
import { compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { ecdsaDerToRaw as strictDerToRaw } from '../../../src/issuers/x509/ecdsa-signature.js';
import { signJws } from '../../../src/keys/index.js';
import { ecdsaDerToRaw, nodeSigner } from '../../../src/keys/signers.js';
import type { JwsAlgorithm } from '../../../src/keys/types.js';

/** The local signer on bare KeyObjects: what it signs, jose verifies; its DER→r‖s step is exact. */
describe('keys: nodeSigner', () => {
  const pairs = {
    ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  };

  it.each(['ES256', 'RS256', 'PS256'] as const)(
    'ok/%s-tokens-verify-with-jose',
    async (alg: JwsAlgorithm) => {
      const pair = alg === 'ES256' ? pairs.ES256 : pairs.RS256;
      const key = { kid: 'k', alg, publicJwk: {}, sign: nodeSigner(pair.privateKey, alg) };
      for (let index = 0; index < 20; index += 1) {
        const jws = await signJws(key, {}, { n: index });
        const verified = await compactVerify(jws, pair.publicKey, { algorithms: [alg] });
        expect(JSON.parse(new TextDecoder().decode(verified.payload))).toEqual({ n: index });
      }
    },
  );

  it('ok/der-to-raw-agrees-with-the-strict-parser-on-openssl-signatures', () => {
    // Enough signatures that r or s with a high bit (a 0x00 pad) and short integers both occur.
    for (let index = 0; index < 2000; index += 1) {
      const der = sign('sha256', Buffer.from(`message ${index}`), pairs.ES256.privateKey);
      expect(Buffer.from(ecdsaDerToRaw(der, 32)).equals(Buffer.from(strictDerToRaw(der, 32)))).toBe(
        true,
      );
    }
  });

  it.each([
    ['fail/not-an-integer', '3006040101020101'],
    ['fail/integer-wider-than-the-curve', `3025022101${'00'.repeat(32)}020101`],
    ['fail/length-past-the-end', '3006020501020101'],
  ])('%s', (_name, der) => {
    expect(() => ecdsaDerToRaw(Buffer.from(der, 'hex'), 32)).toThrow('ECDSA signature is not DER');
  });
});
