import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { checkJwk, decodeUnverified } from '../../../src/verifiers/index.js';

const b64 = (text: string) => Buffer.from(text).toString('base64url');
const token = (header: string, payload: string) => `${b64(header)}.${b64(payload)}.${b64('sig')}`;

describe('decodeUnverified', () => {
  test('ok/claims-and-header', () => {
    expect(
      decodeUnverified(token('{"alg":"RS256","kid":"k"}', '{"iss":"https://a","aud":["x"]}')),
    ).toEqual({
      header: { alg: 'RS256', kid: 'k' },
      claims: { iss: 'https://a', aud: ['x'] },
    });
  });

  test.each([
    ['fail/duplicate-top-level', '{"iss":"a","iss":"b"}'],
    ['fail/duplicate-after-escape-decoding', '{"iss":"a","\\u0069ss":"b"}'],
    ['fail/duplicate-in-nested-object', '{"kubernetes.io":{"namespace":"a","namespace":"b"}}'],
    ['fail/duplicate-inside-array', '{"list":[{"a":1,"a":2}]}'],
    ['fail/trailing-garbage', '{"iss":"a"} x'],
    ['fail/not-an-object', '"iss"'],
    ['fail/nested-too-deeply', `{"a":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`],
    ['fail/array-nested-too-deeply', `{"a":${'['.repeat(33)}1${']'.repeat(33)}}`],
    ['fail/number-literal-over-400-characters', `{"n":${'1'.repeat(401)}}`],
    ['fail/duplicate-after-an-escaped-quote-in-a-value', '{"b":"\\":\\"","b":2}'],
  ])('%s', (_name, payload) => {
    expect(() => decodeUnverified(token('{"alg":"RS256"}', payload))).toThrow(
      'subject_token is malformed',
    );
  });

  test('fail/duplicate-spelt-with-an-escape-after-an-object-named-backslash', () => {
    // Node 24's JSON.parse reads "\u0061" as "\\" in an object shaped like one seen before.
    expect(decodeUnverified(token('{"alg":"RS256"}', '{"a":1,"\\\\":2}')).claims).toEqual({
      a: 1,
      '\\': 2,
    });
    expect(() => decodeUnverified(token('{"alg":"RS256"}', '{"a":1,"\\u0061":2}'))).toThrow(
      'subject_token is malformed',
    );
  });

  test('ok/escaped-names-and-values', () => {
    const claims = (payload: string) => decodeUnverified(token('{"alg":"RS256"}', payload)).claims;
    expect(claims('{"b":"x\\":\\\\","c":{"d" : [1, 2]}}')).toEqual({
      b: 'x":\\',
      c: { d: [1, 2] },
    });
    expect(claims('{"\\u0062":"x\\"y:","c":{"\\"":[1, 2]}}')).toEqual({
      b: 'x"y:',
      c: { '"': [1, 2] },
    });
  });

  test('ok/same-name-at-different-depths-is-no-duplicate', () => {
    expect(decodeUnverified(token('{"alg":"RS256"}', '{"a":{"a":{"a":1}}}')).claims).toEqual({
      a: { a: { a: 1 } },
    });
  });

  test('fail/non-canonical-base64url (non-zero unused bits)', () => {
    const good = token('{"alg":"RS256"}', '{"a":1}');
    const [h, p, s] = good.split('.') as [string, string, string];
    const last = p.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const tweaked = `${p.slice(0, -1)}${alphabet[alphabet.indexOf(last) + 1]}`;
    expect(Buffer.from(tweaked, 'base64url')).toEqual(Buffer.from(p, 'base64url'));
    expect(() => decodeUnverified(`${h}.${tweaked}.${s}`)).toThrow('subject_token is malformed');
  });
});

describe('checkJwk', () => {
  const rsa = (bits: number) =>
    generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({
      format: 'jwk',
    }) as Record<string, unknown>;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
    format: 'jwk',
  }) as Record<string, unknown>;
  const ed = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as Record<
    string,
    unknown
  >;
  const rsa2048 = rsa(2048);

  test.each([
    ['ok/rsa-2048', rsa2048, 'ok'],
    ['ok/rsa-with-alg-ps256', { ...rsa2048, alg: 'PS256', use: 'sig', key_ops: ['verify'] }, 'ok'],
    ['ok/ec-p256', { ...ec, alg: 'ES256' }, 'ok'],
    ['ok/ed25519', { ...ed, alg: 'EdDSA' }, 'ok'],
    ['fail/rsa-1024', rsa(1024), 'RSA modulus of 1024 bits is below 2048'],
    ['fail/rsa-e-1', { ...rsa2048, e: 'AQ' }, 'RSA public exponent 1 is not an odd number >= 3'],
    [
      'fail/rsa-even-e',
      { ...rsa2048, e: 'AQAA' },
      'RSA public exponent 65536 is not an odd number >= 3',
    ],
    ['fail/use-enc', { ...rsa2048, use: 'enc' }, 'use enc is not sig'],
    ['fail/key_ops-without-verify', { ...rsa2048, key_ops: ['encrypt'] }, 'key_ops lacks verify'],
    ['fail/alg-hs256-on-rsa', { ...rsa2048, alg: 'HS256' }, 'alg HS256 is not accepted'],
    ['fail/alg-es256-on-rsa', { ...rsa2048, alg: 'ES256' }, 'alg ES256 does not fit an RSA key'],
    ['fail/alg-es384-on-p256', { ...ec, alg: 'ES384' }, 'alg ES384 does not fit curve P-256'],
    ['fail/unknown-kty', { kty: 'oct', k: 'AAAA' }, 'kty oct is not accepted'],
    ['fail/unknown-curve', { ...ec, crv: 'secp256k1' }, 'EC curve secp256k1 is not accepted'],
    ['fail/private-key-member', { ...ec, d: 'AAAA' }, 'contains private key members'],
    ['fail/ec-short-coordinate', { ...ec, x: 'AAAA' }, 'EC x has the wrong length'],
    ['fail/okp-x25519', { ...ed, crv: 'X25519' }, 'OKP curve X25519 is not accepted'],
    ['fail/not-an-object', 'key', 'not a JSON object'],
  ])('%s', (_name, jwk, expected) => {
    const checked = checkJwk(jwk);
    expect(checked.ok ? 'ok' : checked.reason).toBe(expected);
  });
});
