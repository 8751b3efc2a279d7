import { createHmac, sign as cryptoSign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { SubjectTokenVerifier, VerifierReason } from '../../src/verifiers/index.js';
import {
  generateSigningKey,
  projectedClaims,
  startOidcIssuer,
  type OidcIssuer,
  type SigningKey,
} from '../support/oidc-issuer.js';
import { cluster, makeVerifier, outcome, refusal } from '../unit/verifiers/helpers.js';

/**
 * Every hostile subject token is a 400 invalid_request with a client-safe description, never a
 * 500 and never a fetch of an attacker's URL.
 */
const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64url');

/** Signs exactly these header and payload texts (duplicate members, odd spacing and all). */
function signRaw(headerText: string, payloadText: string, key: SigningKey): string {
  const input = `${b64(headerText)}.${b64(payloadText)}`;
  const signature = cryptoSign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

let idp: OidcIssuer;
let attacker: OidcIssuer;
let attackerKey: SigningKey;
let verifier: SubjectTokenVerifier;
const now = () => Math.floor(Date.now() / 1000);
const claims = (overrides: Record<string, unknown> = {}) => ({
  ...projectedClaims(idp.issuer),
  ...overrides,
});
const header = (overrides: Record<string, unknown> = {}) => ({
  alg: 'RS256',
  kid: idp.currentKey().kid,
  ...overrides,
});
const rawToken = (headerValue: unknown, payloadValue: unknown, key = idp.currentKey()) =>
  signRaw(
    typeof headerValue === 'string' ? headerValue : JSON.stringify(headerValue),
    typeof payloadValue === 'string' ? payloadValue : JSON.stringify(payloadValue),
    key,
  );

beforeAll(async () => {
  idp = await startOidcIssuer({ path: '/cluster' });
  attacker = await startOidcIssuer({ path: '/evil' });
  attackerKey = await generateSigningKey('RS256');
  ({ verifier } = makeVerifier([cluster({ issuer: idp.issuer, caFile: idp.caFile })]));
});
afterAll(async () => {
  await verifier.close();
  await idp.close();
  await attacker.close();
});

describe('subject-token attacks', () => {
  test('ok/baseline: a genuine token verifies', async () => {
    expect(await outcome(verifier.verify(await idp.sign(claims())))).toBe('ok');
  });

  const MALFORMED = '400 invalid_request: subject_token is malformed';
  const ALG = '400 invalid_request: subject_token algorithm is not accepted';
  const HEADER = '400 invalid_request: subject_token header is not accepted';
  const SIGNATURE = '400 invalid_request: subject_token signature is invalid';

  const cases: Array<[string, () => string | Promise<string>, string]> = [
    [
      'fail/alg-none',
      () => `${b64(JSON.stringify(header({ alg: 'none' })))}.${b64(JSON.stringify(claims()))}.`,
      MALFORMED,
    ],
    ['fail/alg-none-signed', () => rawToken(header({ alg: 'none' }), claims()), ALG],
    ['fail/alg-NONE', () => rawToken(header({ alg: 'NONE' }), claims()), ALG],
    ['fail/alg-nOnE', () => rawToken(header({ alg: 'nOnE' }), claims()), ALG],
    [
      'fail/hs256-signed-with-the-rsa-public-key',
      () => {
        const pem = idp.currentKey().privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
        const input = `${b64(JSON.stringify(header({ alg: 'HS256' })))}.${b64(JSON.stringify(claims()))}`;
        return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
      },
      ALG,
    ],
    ['fail/alg-rs1', () => rawToken(header({ alg: 'RS1' }), claims()), ALG],
    ['fail/alg-not-a-string', () => rawToken(header({ alg: ['RS256'] }), claims()), ALG],
    [
      'fail/tampered-payload',
      async () => {
        const [h, , s] = (await idp.sign(claims())).split('.');
        return `${h}.${b64(JSON.stringify(claims({ sub: 'system:serviceaccount:kube-system:admin' })))}.${s}`;
      },
      SIGNATURE,
    ],
    ['fail/foreign-key-with-known-kid', () => rawToken(header(), claims(), attackerKey), SIGNATURE],
    [
      'fail/expired',
      () => idp.sign(claims({ exp: now() - 61, iat: now() - 3600, nbf: now() - 3600 })),
      '400 invalid_request: subject_token is expired',
    ],
    [
      'fail/nbf-in-the-future',
      () => idp.sign(claims({ nbf: now() + 120 })),
      '400 invalid_request: subject_token is not yet valid',
    ],
    [
      'fail/iat-in-the-future',
      () => idp.sign(claims({ iat: now() + 120 })),
      '400 invalid_request: subject_token is not yet valid',
    ],
    [
      'fail/wrong-iss',
      () => idp.sign(claims({ iss: 'https://evil.example.com' })),
      '400 invalid_request: subject_token issuer is not trusted',
    ],
    [
      'fail/iss-with-trailing-slash',
      () => idp.sign(claims({ iss: `${idp.issuer}/` })),
      '400 invalid_request: subject_token issuer is not trusted',
    ],
    [
      'fail/iss-missing',
      () => idp.sign(claims({ iss: undefined })),
      '400 invalid_request: subject_token issuer is not trusted',
    ],
    [
      'fail/wrong-aud',
      () => idp.sign(claims({ aud: ['https://vault.example.com'] })),
      '400 invalid_request: subject_token audience not accepted',
    ],
    [
      'fail/aud-missing',
      () => idp.sign(claims({ aud: undefined })),
      '400 invalid_request: subject_token audience not accepted',
    ],
    [
      'fail/no-exp',
      () => idp.sign(claims({ exp: undefined })),
      '400 invalid_request: subject_token has no expiry',
    ],
    ['fail/exp-not-a-number', () => idp.sign(claims({ exp: '9999999999' })), MALFORMED],
    [
      'fail/unknown-kid',
      () => idp.sign(claims(), { kid: 'made-up-kid' }),
      '400 invalid_request: subject_token signing key is unknown',
    ],
    [
      'fail/unknown-crit',
      () =>
        rawToken(header({ crit: ['urn:example:unknown'], 'urn:example:unknown': true }), claims()),
      HEADER,
    ],
    ['fail/crit-b64', () => rawToken(header({ crit: ['b64'], b64: false }), claims()), HEADER],
    [
      'fail/17KiB-token',
      () => idp.sign(claims({ padding: 'x'.repeat(17 * 1024) })),
      '400 invalid_request: subject_token is too large',
    ],
    ['fail/non-json-payload', () => rawToken(header(), 'not json at all'), MALFORMED],
    ['fail/payload-is-a-json-array', () => rawToken(header(), '[1,2,3]'), MALFORMED],
    ['fail/header-is-a-json-string', () => rawToken('"RS256"', claims()), MALFORMED],
    [
      'fail/duplicate-alg-in-header',
      () => rawToken(`{"alg":"RS256","kid":"${idp.currentKey().kid}","alg":"none"}`, claims()),
      MALFORMED,
    ],
    [
      'fail/duplicate-escaped-member-in-header',
      () =>
        rawToken(`{"alg":"RS256","kid":"${idp.currentKey().kid}","\\u0061lg":"RS256"}`, claims()),
      MALFORMED,
    ],
    [
      'fail/duplicate-sub-in-payload',
      () =>
        rawToken(
          header(),
          JSON.stringify(claims()).replace(
            /}$/,
            ',"sub":"system:serviceaccount:kube-system:admin"}',
          ),
        ),
      MALFORMED,
    ],
    [
      'fail/duplicate-member-nested-in-payload',
      () =>
        rawToken(
          header(),
          JSON.stringify(claims()).replace(
            '"namespace":"default"',
            '"namespace":"default","namespace":"kube-system"',
          ),
        ),
      MALFORMED,
    ],
    ['fail/padded-segment', async () => (await idp.sign(claims())).replace('.', '==.'), MALFORMED],
    ['fail/padded-signature', async () => `${await idp.sign(claims())}==`, MALFORMED],
    [
      'fail/space-in-segment',
      async () => {
        const t = await idp.sign(claims());
        return `${t.slice(0, 10)} ${t.slice(10)}`;
      },
      MALFORMED,
    ],
    [
      'fail/newline-in-segment',
      async () => {
        const t = await idp.sign(claims());
        return `${t.slice(0, 10)}\n${t.slice(10)}`;
      },
      MALFORMED,
    ],
    ['fail/leading-whitespace', async () => ` ${await idp.sign(claims())}`, MALFORMED],
    [
      'fail/standard-base64-alphabet',
      async () => {
        const t = await idp.sign(claims());
        return `${t.slice(0, -4)}+/+/`;
      },
      MALFORMED,
    ],
    [
      'fail/two-segments',
      async () => (await idp.sign(claims())).split('.').slice(0, 2).join('.'),
      MALFORMED,
    ],
    ['fail/four-segments', async () => `${await idp.sign(claims())}.e30`, MALFORMED],
    [
      'fail/json-serialization',
      () => JSON.stringify({ payload: b64('{}'), signatures: [] }),
      MALFORMED,
    ],
    ['fail/garbage', () => '%%%not-a-token%%%', MALFORMED],
    ['fail/empty', () => '', MALFORMED],
    ['fail/dots-only', () => '..', MALFORMED],
    [
      'fail/deeply-nested-payload',
      () => rawToken(header(), `{"a":${'['.repeat(100)}${']'.repeat(100)}}`),
      MALFORMED,
    ],
  ];

  /** What tools and logs match on: each client description above comes from one cause here. */
  const REASON_OF: Record<string, VerifierReason> = {
    [MALFORMED]: 'malformed_token',
    [ALG]: 'algorithm_not_accepted',
    [HEADER]: 'header_not_accepted',
    [SIGNATURE]: 'bad_signature',
    '400 invalid_request: subject_token is expired': 'token_expired',
    '400 invalid_request: subject_token is not yet valid': 'token_not_yet_valid',
    '400 invalid_request: subject_token issuer is not trusted': 'unknown_issuer',
    '400 invalid_request: subject_token audience not accepted': 'audience_not_accepted',
    '400 invalid_request: subject_token has no expiry': 'missing_expiry',
    '400 invalid_request: subject_token signing key is unknown': 'unknown_kid',
    '400 invalid_request: subject_token is too large': 'token_too_large',
  };
  test.each(cases)('%s', async (_name, makeToken, expected) => {
    const verified = verifier.verify(await makeToken());
    expect(await outcome(verified)).toBe(expected);
    expect((await refusal(verified)).reason).toBe(REASON_OF[expected]);
  });

  const pointerCases: Array<[string, () => Record<string, unknown>]> = [
    ['fail/jku-header', () => ({ jku: attacker.jwksUri })],
    ['fail/x5u-header', () => ({ x5u: `${attacker.issuer}/cert.pem` })],
    ['fail/jwk-header', () => ({ jwk: attackerKey.publicJwk })],
    ['fail/x5c-header', () => ({ x5c: [b64('not a certificate')] })],
    [
      'fail/jku-header-with-the-attacker-kid',
      () => ({ jku: attacker.jwksUri, kid: attackerKey.kid }),
    ],
  ];
  test.each(pointerCases)('%s: refused and the URL is never fetched', async (_name, extra) => {
    const token = rawToken(header({ kid: attackerKey.kid, ...extra() }), claims(), attackerKey);
    const verified = verifier.verify(token);
    expect(await outcome(verified)).toBe(HEADER);
    expect((await refusal(verified)).reason).toBe('header_not_accepted');
    expect(attacker.requests()).toBe(0);
  });
});
