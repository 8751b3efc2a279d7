import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, TOKEN_EXCHANGE, JWT_TYPE, type TestApp } from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

/**
 * Whatever a client sends, the answer is a documented status with an RFC 6749 body: never a
 * 500, never a stack trace, never an echo of the subject token.
 */
let t: TestApp;
let realToken: string;
beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
  realToken = await t.devToken('orders', 'order-service');
});
afterAll(async () => {
  await t?.close();
});

const PARAMETERS = [
  'grant_type',
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'audience',
  'resource',
  'scope',
  'csr',
  'duration_seconds',
  'actor_token',
  'actor_token_type',
];
const INTERESTING = [
  TOKEN_EXCHANGE,
  JWT_TYPE,
  'urn:ietf:params:oauth:token-type:access_token',
  'urn:tessera:params:oauth:token-type:x509-svid',
  'orders-reader',
  'urn:tessera:role:orders-reader',
  'https://vault.example.com',
  'orders.read',
  '-1',
  '99999999999999999999',
  '1e3',
  'eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.',
  'a.b.c',
  '....',
  '{"__proto__":{"admin":true}}',
  '\u0000',
  '%00',
  '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
];
const DOCUMENTED = new Set([400, 403, 413, 429, 503, 200]);

const value = fc.oneof(
  fc.constantFrom(...INTERESTING),
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 16 }),
  fc.string({ minLength: 100, maxLength: 3000 }),
);
const name = fc.oneof(
  fc.constantFrom(...PARAMETERS),
  fc.string({ maxLength: 12 }),
  fc.string({ minLength: 100, maxLength: 3000 }),
);
const formBody = fc.array(fc.tuple(name, value), { maxLength: 12 }).map((pairs) => ({
  contentType: 'application/x-www-form-urlencoded',
  body: new URLSearchParams(pairs).toString(),
}));
const jsonBody = fc
  .dictionary(name, fc.oneof(value, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 10 })
  .map((object) => ({ contentType: 'application/json', body: JSON.stringify(object) }));
const rawBody = fc.record({
  contentType: fc.constantFrom(
    'application/json',
    'application/x-www-form-urlencoded',
    'text/plain',
    'multipart/form-data; boundary=x',
    '',
  ),
  body: fc.string({ maxLength: 300 }),
});
/** A validly signed dev token, so requests also get past verification into role selection and policy. */
const withRealToken = fc
  .record({
    resource: fc.constantFrom('orders-reader', 'billing', 'shared', 'nope', ''),
    extra: fc.array(fc.tuple(fc.constantFrom(...PARAMETERS), value), { maxLength: 4 }),
  })
  .map(({ resource, extra }) => ({
    contentType: 'application/x-www-form-urlencoded',
    body: new URLSearchParams([
      ['grant_type', TOKEN_EXCHANGE],
      ['subject_token_type', JWT_TYPE],
      ['subject_token', realToken],
      ['resource', resource],
      ...extra.filter(([name]) => name !== 'subject_token'),
    ]).toString(),
  }));

/** Every name and value of the body that is 64 characters or longer. */
function longPieces(body: string): string[] {
  const pieces: string[] = [];
  try {
    for (const [key, item] of new URLSearchParams(body)) pieces.push(key, item);
  } catch {
    // not a form
  }
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === 'object')
      for (const [key, item] of Object.entries(parsed))
        pieces.push(key, typeof item === 'string' ? item : (JSON.stringify(item) ?? ''));
  } catch {
    // not JSON
  }
  return pieces.filter((piece) => piece.length >= 64);
}

describe('POST /v1/token under arbitrary input', () => {
  it('answers every body with a documented status and an RFC 6749 error body', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(formBody, jsonBody, rawBody, withRealToken),
        async ({ contentType, body }) => {
          const response = await t.app.request('/v1/token', {
            method: 'POST',
            headers: contentType ? { 'content-type': contentType } : {},
            body,
          });
          expect(
            DOCUMENTED.has(response.status),
            `status ${response.status} for ${contentType} ${body.slice(0, 200)}`,
          ).toBe(true);
          const json = (await response.json()) as Record<string, unknown>;
          if (response.status === 200) {
            expect(json.access_token).toEqual(expect.any(String));
            return;
          }
          expect(Object.keys(json).sort()).toEqual(['error', 'error_description']);
          expect(String(json.error_description)).not.toMatch(
            /\n\s+at |Error:|node_modules|\/src\//,
          );
          expect(String(json.error_description).length).toBeLessThan(400);
          // Nothing long the client sent (a token, a name, a value) comes back.
          const description = String(json.error_description);
          for (const sent of longPieces(body)) expect(description).not.toContain(sent.slice(0, 64));
        },
      ),
      { numRuns: 400 },
    );
    expect(t.logs.text()).not.toContain('unexpected error');
  });
});
