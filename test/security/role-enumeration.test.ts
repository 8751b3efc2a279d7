import { generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

/**
 * Without a valid subject token nothing about roles is revealed: a request for an existing
 * role, an unknown one, an audience or scope the role does not list, or an X.509 credential
 * gets the very same answer, because the token is verified (TokenReview included) before the
 * role is looked at.
 */

const X509 = 'urn:tessera:params:oauth:token-type:x509-svid';
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A well-formed ES256 JWT with these claims, signed by a key no cluster knows. */
function forged(claims: Record<string, unknown>): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = `${b64({ alg: 'ES256', kid: 'made-up', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** What a prober would ask, each revealing something about roles if answered differently. */
const PROBES: Array<[string, Record<string, string>]> = [
  ['existing-role', { resource: 'orders-reader' }],
  ['unknown-role', { resource: 'no-such-role' }],
  ['existing-role-by-urn', { resource: 'urn:tessera:role:orders-reader' }],
  [
    'audience-the-role-does-not-list',
    { resource: 'orders-reader', audience: 'https://elsewhere.example.com' },
  ],
  ['audience-the-role-lists', { resource: 'orders-reader', audience: 'orders-api' }],
  ['scope-the-role-does-not-list', { resource: 'orders-reader', scope: 'admin' }],
  ['scope-the-role-lists', { resource: 'orders-reader', scope: 'orders.read' }],
  [
    'x509-from-a-role-without-x509',
    { resource: 'orders-reader', requested_token_type: X509, csr: 'MIIBAAAA' },
  ],
  ['role-by-a-known-audience', { audience: 'orders-api' }],
  ['role-by-an-unknown-audience', { audience: 'nobody' }],
  ['ambiguous-audience', { audience: 'shared-aud' }],
  ['neither-resource-nor-audience', {}],
];

describe('roles cannot be enumerated without a valid token (jwks cluster)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
  });
  afterAll(async () => {
    await t?.close();
  });

  const ask = (subjectToken: string, params: Record<string, string>) =>
    postToken(
      t.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        ...params,
      }),
    );

  const garbage: Array<[string, () => string | Promise<string>]> = [
    ['fail/garbage-token', () => '%%%not-a-token%%%'],
    [
      'fail/unknown-issuer',
      () =>
        forged({
          iss: 'https://evil.example.com',
          sub: 'system:serviceaccount:a:b',
          aud: 'tessera',
          exp: 9_999_999_999,
        }),
    ],
    [
      'fail/dev-cluster-issuer-foreign-key',
      () =>
        forged({
          iss: 'https://dev-cluster.tessera.local',
          sub: 'system:serviceaccount:orders:order-x',
          aud: 'tessera',
          exp: 9_999_999_999,
        }),
    ],
    [
      'fail/expired-dev-token',
      async () =>
        await t.devToken('orders', 'order-service', {
          now: Math.floor(Date.now() / 1000) - 7200,
          ttlSeconds: 600,
        }),
    ],
  ];
  it.each(garbage)('%s: every probe gets the same answer', async (_name, token) => {
    const subject = await token();
    const answers = await Promise.all(
      PROBES.map(async ([probe, params]) => [probe, await ask(subject, params)] as const),
    );
    const [, first] = answers[0] as (typeof answers)[number];
    expect(first.status).toBe(400);
    expect(first.json.error).toBe('invalid_request');
    for (const [probe, answer] of answers)
      expect({ probe, status: answer.status, json: answer.json }).toEqual({
        probe,
        status: first.status,
        json: first.json,
      });
  });

  it('ok/with-a-valid-token-the-probes-are-told-apart', async () => {
    const subject = await t.devToken('orders', 'order-service');
    const unknown = await ask(subject, { resource: 'no-such-role' });
    const wrongScope = await ask(subject, { resource: 'orders-reader', scope: 'admin' });
    expect([unknown.status, unknown.json.error, wrongScope.status, wrongScope.json.error]).toEqual([
      400,
      'invalid_target',
      400,
      'invalid_scope',
    ]);
  });
});

describe('roles cannot be enumerated without a valid token (tokenreview cluster)', () => {
  let server: KubeApiServer;
  let t: TestApp;
  beforeAll(async () => {
    server = await startKubeApiServer();
    t = await startTestApp({
      clusters: [
        {
          name: 'prod',
          issuer: server.issuer,
          verify: 'tokenreview',
          kubeconfig: server.kubeconfig(),
          audiences: ['sts.example.com'],
        },
      ],
      policies: writePolicies(ENDPOINT_ROLES),
    });
  });
  afterAll(async () => {
    await t?.close();
    await server?.stop();
  });

  it('fail/tokenreview-garbage-every-probe-gets-the-review-refusal', async () => {
    const answers = [];
    for (const [probe, params] of PROBES) {
      // A distinct token per probe: no answer comes from the refusal cache.
      const subject = forged({
        iss: server.issuer,
        sub: 'system:serviceaccount:orders:order-x',
        aud: 'sts.example.com',
        exp: 9_999_999_999,
        probe,
      });
      const answer = await postToken(
        t.url,
        exchangeForm({
          grant_type: TOKEN_EXCHANGE,
          subject_token: subject,
          subject_token_type: JWT_TYPE,
          ...params,
        }),
      );
      answers.push({ probe, status: answer.status, json: answer.json });
    }
    for (const answer of answers) {
      expect(answer).toEqual({
        probe: answer.probe,
        status: 400,
        json: { error: 'invalid_request', error_description: 'subject_token is not valid' },
      });
    }
    expect(server.reviews()).toHaveLength(PROBES.length);
  });
});
