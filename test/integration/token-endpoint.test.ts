import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';
import { anyString, includingAll } from '../support/matchers.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
});
afterAll(async () => {
  await t?.close();
});

const exchange = (subjectToken: string, extra: Record<string, string | string[]> = {}) =>
  postToken(
    t.url,
    exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: JWT_TYPE,
      ...extra,
    }),
  );

async function verifyIssued(token: string, audience: string) {
  const jwks = (await (await fetch(`${t.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  return jwtVerify(token, createLocalJWKSet(jwks), { issuer: t.url, audience });
}

describe('POST /v1/token', () => {
  it('ok/role-by-resource: issues a JWT with the claims of docs/architecture.md', async () => {
    const subject = await t.devToken('orders', 'order-service');
    const { status, headers, json } = await exchange(subject, { resource: 'orders-reader' });
    expect(status).toBe(200);
    expect(headers.get('cache-control')).toBe('no-store');
    expect(json).toEqual({
      access_token: anyString(),
      issued_token_type: JWT_TYPE,
      token_type: 'N_A',
      expires_in: 900,
    });
    const { payload, protectedHeader } = await verifyIssued(
      json.access_token as string,
      'https://vault.example.com',
    );
    expect(protectedHeader.alg).toBe('ES256');
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({
      iss: t.url,
      sub: 'system:serviceaccount:orders:order-service',
      aud: 'https://vault.example.com',
      team: 'orders',
      ns: 'orders',
      tessera: { role: 'orders-reader', cluster: 'dev' },
      'kubernetes.io': { namespace: 'orders', serviceaccount: { name: 'order-service' } },
    });
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('ok/role-by-urn-and-requested-audience-and-duration', async () => {
    const { status, json } = await exchange(await t.devToken('orders', 'order-api'), {
      resource: 'urn:tessera:role:orders-reader',
      audience: 'orders-api',
      duration_seconds: '120',
    });
    expect(status).toBe(200);
    expect(json.expires_in).toBe(120);
    const { payload } = await verifyIssued(json.access_token as string, 'orders-api');
    expect(payload.aud).toBe('orders-api');
  });

  it('ok/duration-capped-by-role-max', async () => {
    const { json } = await exchange(await t.devToken('billing', 'payer'), {
      resource: 'billing',
      duration_seconds: '86400',
    });
    expect(json.expires_in).toBe(1800);
  });

  it('ok/role-by-audience-rsa-and-subject-template', async () => {
    const { status, json } = await exchange(await t.devToken('billing', 'payer'), {
      audience: 'sts.amazonaws.com',
    });
    expect(status).toBe(200);
    expect(decodeProtectedHeader(json.access_token as string).alg).toBe('RS256');
    const { payload } = await verifyIssued(json.access_token as string, 'sts.amazonaws.com');
    expect(payload.sub).toBe('system:serviceaccount:billing:payer@dev');
  });

  it('ok/access-token-type-is-bearer', async () => {
    const { json } = await exchange(await t.devToken('orders', 'order-service'), {
      resource: 'orders-reader',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    });
    expect(json.token_type).toBe('Bearer');
    expect(json.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
  });

  it('ok/scopes-listed-by-role-are-carried', async () => {
    const { json } = await exchange(await t.devToken('orders', 'order-service'), {
      resource: 'orders-reader',
      scope: 'orders.read',
    });
    expect(json.scope).toBe('orders.read');
    const { payload } = await verifyIssued(
      json.access_token as string,
      'https://vault.example.com',
    );
    expect(payload.scope).toBe('orders.read');
  });

  it('ok/scope-ignored-when-role-lists-none', async () => {
    const { status, json } = await exchange(await t.devToken('billing', 'payer'), {
      resource: 'billing',
      scope: 'https://www.googleapis.com/auth/cloud-platform',
    });
    expect(status).toBe(200);
    expect(json.scope).toBeUndefined();
  });

  it('ok/json-body', async () => {
    const body = JSON.stringify({
      grant_type: TOKEN_EXCHANGE,
      subject_token: await t.devToken('orders', 'order-service'),
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
    });
    const { status } = await postToken(t.url, body, 'application/json');
    expect(status).toBe(200);
  });

  it('ok/actor-token-becomes-act-claim', async () => {
    const { json } = await exchange(await t.devToken('orders', 'order-service'), {
      resource: 'orders-reader',
      actor_token: await t.devToken('platform', 'gateway'),
      actor_token_type: JWT_TYPE,
    });
    const { payload } = await verifyIssued(
      json.access_token as string,
      'https://vault.example.com',
    );
    expect(payload.act).toEqual({
      sub: 'system:serviceaccount:platform:gateway',
      iss: 'https://dev-cluster.tessera.local',
    });
  });

  it('fail/expired-actor-token-is-named-as-such', async () => {
    const { status, json } = await exchange(await t.devToken('orders', 'order-service'), {
      resource: 'orders-reader',
      actor_token: await t.devToken('platform', 'gateway', {
        now: Math.floor(Date.now() / 1000) - 7200,
      }),
      actor_token_type: JWT_TYPE,
    });
    expect(status).toBe(400);
    expect(json).toEqual({ error: 'invalid_request', error_description: 'actor_token is expired' });
  });

  it('ok/every-jti-is-unique', async () => {
    const subject = await t.devToken('orders', 'order-service');
    const jtis = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { json } = await exchange(subject, { resource: 'orders-reader' });
      jtis.add(
        (await verifyIssued(json.access_token as string, 'https://vault.example.com')).payload
          .jti as string,
      );
    }
    expect(jtis.size).toBe(20);
  });

  const refusals: Array<[string, () => Record<string, string | string[]>, number, string, string]> =
    [
      [
        'fail/unknown-role',
        () => ({ resource: 'nope' }),
        400,
        'invalid_target',
        'resource names no known role',
      ],
      [
        'fail/ambiguous-audience',
        () => ({ audience: 'shared-aud' }),
        400,
        'invalid_target',
        'several roles issue for the requested audience; name one with resource',
      ],
      [
        'fail/no-role-for-audience',
        () => ({ audience: 'https://unknown.example.com' }),
        400,
        'invalid_target',
        'no role issues for the requested audience',
      ],
      [
        'fail/audience-not-allowed-by-role',
        () => ({ resource: 'orders-reader', audience: 'sts.amazonaws.com' }),
        400,
        'invalid_target',
        'audience is not allowed for role orders-reader',
      ],
      [
        'fail/neither-resource-nor-audience',
        () => ({}),
        400,
        'invalid_target',
        'resource or audience is required to select a role',
      ],
      [
        'fail/scope-not-listed',
        () => ({ resource: 'orders-reader', scope: 'orders.admin' }),
        400,
        'invalid_scope',
        'scope is not allowed for role orders-reader',
      ],
      [
        'fail/x509-without-profile',
        () => ({
          resource: 'orders-reader',
          requested_token_type: 'urn:tessera:params:oauth:token-type:x509-svid',
          csr: 'x',
        }),
        400,
        'invalid_request',
        'role orders-reader does not issue x509-svid credentials',
      ],
    ];
  it.each(refusals)('%s', async (_name, extra, status, error, description) => {
    const response = await exchange(await t.devToken('orders', 'order-service'), extra());
    expect(response.status).toBe(status);
    expect(response.json).toEqual({ error, error_description: description });
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  it('fail/unknown-role-is-refused-after-the-token-check', async () => {
    expect((await exchange('not-even-a-jwt', { resource: 'nope' })).json).toEqual({
      error: 'invalid_request',
      error_description: 'subject_token is malformed',
    });
    const response = await exchange(await t.devToken('orders', 'order-service'), {
      resource: 'nope',
    });
    expect(response.json).toEqual({
      error: 'invalid_target',
      error_description: 'resource names no known role',
    });
  });

  it('fail/policy-denies-namespace: 403 naming the role', async () => {
    const response = await exchange(await t.devToken('payments', 'order-service'), {
      resource: 'orders-reader',
    });
    expect(response.status).toBe(403);
    // Names the role, the condition and what the request carried, never the value the policy wants ("orders").
    expect(response.json).toEqual({
      error: 'access_denied',
      error_description:
        'role "orders-reader" denied: condition StringEquals on "kubernetes.io/namespace" did not match; the request carried "payments"',
    });
  });

  it('fail/role-algorithm-not-enabled-is-503-not-500', async () => {
    const response = await exchange(await t.devToken('orders', 'order-service'), {
      resource: 'pss-only',
    });
    expect(response.status).toBe(503);
    expect(response.json).toEqual({
      error: 'temporarily_unavailable',
      error_description: 'no PS256 signing key is configured',
    });
    expect(t.logs.text()).toContain('role signs with an algorithm keys.algorithms does not enable');
  });

  it('fail/expired-subject-token', async () => {
    const expired = await t.devToken('orders', 'order-service', {
      now: Math.floor(Date.now() / 1000) - 7200,
      ttlSeconds: 600,
    });
    const response = await exchange(expired, { resource: 'orders-reader' });
    expect(response.status).toBe(400);
    expect(response.json).toEqual({
      error: 'invalid_request',
      error_description: 'subject_token is expired',
    });
  });

  it('fail/subject-token-for-another-audience', async () => {
    const response = await exchange(
      await t.devToken('orders', 'order-service', { audience: 'kubernetes.default.svc' }),
      { resource: 'orders-reader' },
    );
    expect(response.status).toBe(400);
    expect(response.json).toEqual({
      error: 'invalid_request',
      error_description: 'subject_token audience not accepted',
    });
  });

  it('fail/body-over-64KiB-is-413', async () => {
    const response = await postToken(
      t.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: 'x'.repeat(70 * 1024),
        subject_token_type: JWT_TYPE,
      }),
    );
    expect(response.status).toBe(413);
    expect(response.json).toEqual({
      error: 'invalid_request',
      error_description: 'request body exceeds 65536 bytes',
    });
  });

  it('fail/chunked-body-over-64KiB-is-413-while-it-streams', async () => {
    // No Content-Length: the limit is enforced on the bytes read from the socket.
    const chunk = new TextEncoder().encode(
      `grant_type=${encodeURIComponent(TOKEN_EXCHANGE)}&subject_token=${'x'.repeat(16 * 1024)}`,
    );
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(`${t.url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      duplex: 'half',
    });
    expect(response.status).toBe(413);
    expect(response.headers.get('content-length')).not.toBeNull();
    expect(await response.json()).toEqual({
      error: 'invalid_request',
      error_description: 'request body exceeds 65536 bytes',
    });
  });

  it('ok/a-body-in-many-chunks-is-read-whole', async () => {
    const form = exchangeForm({
      grant_type: 'password',
      subject_token: 'a',
      subject_token_type: JWT_TYPE,
    });
    const bytes = new TextEncoder().encode(form);
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(at, at + 7));
        at += 7;
      },
    });
    const response = await fetch(`${t.url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      duplex: 'half',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: 'unsupported_grant_type',
      error_description: `grant_type must be ${TOKEN_EXCHANGE}`,
    });
  });

  it('fail/duplicated-parameter', async () => {
    const body = `${exchangeForm({ grant_type: TOKEN_EXCHANGE, subject_token: 'a', subject_token_type: JWT_TYPE })}&subject_token=b`;
    const response = await postToken(t.url, body);
    expect(response).toMatchObject({
      status: 400,
      json: {
        error: 'invalid_request',
        error_description: 'parameter subject_token is duplicated',
      },
    });
  });

  it('logs/no-token-in-any-log-line', async () => {
    const subject = await t.devToken('orders', 'order-service');
    const { json } = await exchange(subject, { resource: 'orders-reader' });
    await exchange(subject, { resource: 'orders-reader', scope: 'orders.admin' });
    await exchange(await t.devToken('payments', 'x'), { resource: 'orders-reader' });
    const logs = t.logs.text();
    const outcomes = t.logs.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.event === 'token_exchange');
    expect(outcomes.map((event) => event.outcome).slice(-3)).toEqual(['allow', 'error', 'deny']);
    const signature = (value: string) => value.split('.')[2] as string;
    expect(logs).not.toContain(signature(subject));
    expect(logs).not.toContain(signature(json.access_token as string));
  });
});

describe('broker endpoints', () => {
  it('discovery document carries what cloud IAM reads', async () => {
    const response = await fetch(`${t.url}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      issuer: t.url,
      jwks_uri: `${t.url}/.well-known/jwks.json`,
      token_endpoint: `${t.url}/v1/token`,
      grant_types_supported: [TOKEN_EXCHANGE],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256', 'RS256'],
      token_endpoint_auth_methods_supported: ['none'],
      claims_supported: includingAll(['iss', 'sub', 'aud', 'exp', 'iat', 'jti']),
    });
  });

  it('jwks publishes public keys only, each with kid, alg and use', async () => {
    const response = await fetch(`${t.url}/.well-known/jwks.json`);
    expect(response.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const { keys } = (await response.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys.map((key) => key.alg)).toEqual(expect.arrayContaining(['ES256', 'RS256']));
    for (const key of keys) {
      expect(key).toMatchObject({ kid: anyString(), use: 'sig' });
      for (const privatePart of ['d', 'p', 'q', 'dp', 'dq', 'qi'])
        expect(key).not.toHaveProperty(privatePart);
    }
  });

  it('healthz and readyz', async () => {
    expect(await (await fetch(`${t.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: 'ready',
      checks: { keys: 'ok', policies: { roles: 4 } },
    });
  });

  it('404 and 405 are JSON', async () => {
    const missing = await fetch(`${t.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: 'not_found',
      error_description: 'no such route',
    });
    const wrongMethod = await fetch(`${t.url}/v1/token`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toContain('POST');
    expect(await wrongMethod.json()).toEqual({
      error: 'method_not_allowed',
      error_description: 'method not allowed',
    });
  });

  it('metrics count exchanges by outcome and role', async () => {
    const count = async (labels: string): Promise<number> => {
      const text = await (await fetch(`${t.url}/metrics`)).text();
      const line = text
        .split('\n')
        .find((entry) => entry.startsWith(`tessera_token_exchanges_total{${labels}}`));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    const ok = 'result="ok",role="billing",token_type="urn:ietf:params:oauth:token-type:jwt"';
    const denied =
      'result="access_denied",role="billing",token_type="urn:ietf:params:oauth:token-type:jwt"';
    const [okBefore, deniedBefore] = [await count(ok), await count(denied)];
    await exchange(await t.devToken('billing', 'payer'), { resource: 'billing' });
    await exchange(await t.devToken('orders', 'payer'), { resource: 'billing' });
    expect([(await count(ok)) - okBefore, (await count(denied)) - deniedBefore]).toEqual([1, 1]);
  });
});
