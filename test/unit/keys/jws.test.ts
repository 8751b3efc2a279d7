import { compactVerify, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { signJws } from '../../../src/keys/index.js';
import { testSigningKey } from '../../support/x509.js';

/** signJws: the header's alg and kid come from the key; typ is JWT unless the caller sets it. */
const keys = { ES256: testSigningKey('ES256'), RS256: testSigningKey('RS256') };

const cases: Array<
  [
    string,
    keyof typeof keys,
    Record<string, unknown>,
    Record<string, unknown> | string,
    Record<string, unknown>,
  ]
> = [
  [
    'ok/empty-header-gets-alg-kid-and-typ-jwt',
    'ES256',
    {},
    { sub: 'x' },
    { typ: 'JWT', alg: 'ES256', kid: 'test-ES256' },
  ],
  [
    'ok/rsa-key-sets-rs256',
    'RS256',
    {},
    { sub: 'x' },
    { typ: 'JWT', alg: 'RS256', kid: 'test-RS256' },
  ],
  [
    'ok/typ-override-kept',
    'ES256',
    { typ: 'at+jwt' },
    { sub: 'x' },
    { typ: 'at+jwt', alg: 'ES256', kid: 'test-ES256' },
  ],
  [
    'ok/other-header-members-kept',
    'ES256',
    { cty: 'JWT', x5t: 'abc' },
    { sub: 'x' },
    { typ: 'JWT', cty: 'JWT', x5t: 'abc', alg: 'ES256', kid: 'test-ES256' },
  ],
  [
    'fail/caller-alg-and-kid-are-overridden-by-the-key',
    'ES256',
    { alg: 'none', kid: 'someone-else' },
    { sub: 'x' },
    { typ: 'JWT', alg: 'ES256', kid: 'test-ES256' },
  ],
  [
    'ok/string-payload-signed-as-is',
    'ES256',
    {},
    '{"sub":"raw"}',
    { typ: 'JWT', alg: 'ES256', kid: 'test-ES256' },
  ],
];

describe('keys: signJws', () => {
  it.each(cases)('%s', async (_name, alg, header, payload, expectedHeader) => {
    const key = keys[alg];
    const jws = await signJws(key, header, payload);
    const verified = await compactVerify(jws, await importJWK(key.publicJwk, alg));
    expect(verified.protectedHeader).toEqual(expectedHeader);
    expect(new TextDecoder().decode(verified.payload)).toBe(
      typeof payload === 'string' ? payload : JSON.stringify(payload),
    );
  });
});
