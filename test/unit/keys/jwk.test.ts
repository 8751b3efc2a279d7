import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  jwkFromEcPoint,
  jwkFromKeyObject,
  jwkFromRsa,
  jwkThumbprint,
} from '../../../src/keys/jwk.js';
import { jwtKeyLabel, parseJwtKeyLabel } from '../../../src/keys/pkcs11-objects.js';

// RFC 7638 §3.1: the example RSA key and its thumbprint.
const RFC7638_KEY: JWK = {
  kty: 'RSA',
  n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
  e: 'AQAB',
  alg: 'RS256',
  kid: '2011-04-29',
};

describe('keys: jwk', () => {
  it('ok/rfc7638-example-thumbprint', () => {
    expect(jwkThumbprint(RFC7638_KEY)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it.each(['ES256', 'RS256'] as const)('ok/matches-jose-and-raw-forms/%s', async (alg) => {
    const { privateKey } =
      alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = jwkFromKeyObject(privateKey, alg);
    expect(jwk.kid).toBe(await calculateJwkThumbprint(jwk, 'sha256'));
    expect(jwk).not.toHaveProperty('d');
    const raw =
      alg === 'ES256'
        ? jwkFromEcPoint(
            Buffer.concat([
              Buffer.from([4]),
              Buffer.from(jwk.x as string, 'base64url'),
              Buffer.from(jwk.y as string, 'base64url'),
            ]),
            alg,
          )
        : jwkFromRsa(
            Buffer.concat([Buffer.from([0]), Buffer.from(jwk.n as string, 'base64url')]),
            Buffer.from([0, 1, 0, 1]),
            alg,
          );
    expect(raw).toEqual(jwk);
  });

  it('fail/compressed-ec-point', () => {
    expect(() => jwkFromEcPoint(Buffer.alloc(33, 2), 'ES256')).toThrow(
      'expected an uncompressed P-256 point',
    );
  });
});

describe('keys: pkcs11 labels', () => {
  it.each([
    [
      'ok/active',
      { alg: 'ES256', state: 'active', createdAt: 100, activatedAt: 100 },
      'tessera:jwt:ES256:active:100:-:100:-',
    ],
    [
      'ok/next',
      { alg: 'PS256', state: 'next', createdAt: 100, activateAt: 430 },
      'tessera:jwt:PS256:next:100:430:-:-',
    ],
    [
      'ok/retired',
      { alg: 'RS256', state: 'retired', createdAt: 1, activatedAt: 2, retiredAt: 3 },
      'tessera:jwt:RS256:retired:1:-:2:3',
    ],
  ] as const)('%s', (_name, record, label) => {
    expect(jwtKeyLabel(record)).toBe(label);
    expect(parseJwtKeyLabel(label)).toEqual({
      activateAt: undefined,
      activatedAt: undefined,
      retiredAt: undefined,
      ...record,
    });
  });

  it.each([
    ['fail/foreign-label', 'my-app-key'],
    ['fail/unknown-alg', 'tessera:jwt:HS256:active:1:-:1:-'],
    ['fail/unknown-state', 'tessera:jwt:ES256:revoked:1:-:1:-'],
    ['fail/no-created', 'tessera:jwt:ES256:active:-:-:1:-'],
    ['fail/extra-field', 'tessera:jwt:ES256:active:1:-:1:-:9'],
    ['fail/named-key', 'tessera:named:x509-ca:ES256'],
  ])('%s', (_name, label) => {
    expect(parseJwtKeyLabel(label)).toBeUndefined();
  });
});
