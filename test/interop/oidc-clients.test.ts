import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JWT_TYPE, startTestApp, TOKEN_EXCHANGE, type TestApp } from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
});
afterAll(async () => {
  await t?.close();
});

describe('interop with third-party clients', () => {
  it('openid-client discovers the broker and exchanges a token with genericGrantRequest', async () => {
    const config = await client.discovery(new URL(t.url), 'orders-pod', undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    expect(config.serverMetadata().token_endpoint).toBe(`${t.url}/v1/token`);
    const response = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: await t.devToken('orders', 'order-service'),
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    });
    expect(response.token_type).toBe('bearer');
    expect(response.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
    expect(response.expires_in).toBe(900);

    // A relying party verifies the issued JWT from the broker's published keys alone.
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri as string));
    const { payload } = await jwtVerify(response.access_token, jwks, {
      issuer: t.url,
      audience: 'https://vault.example.com',
    });
    expect(payload.sub).toBe('system:serviceaccount:orders:order-service');
  });

  it('openid-client surfaces the RFC 6749 error of a refused exchange', async () => {
    const config = await client.discovery(new URL(t.url), 'orders-pod', undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    const refused = client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: await t.devToken('payments', 'order-service'),
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
    });
    await expect(refused).rejects.toMatchObject({ error: 'access_denied', status: 403 });
  });

  it("jose's remote JWKS verifies RS256 and ES256 tokens from the running server", async () => {
    const jwks = createRemoteJWKSet(new URL(`${t.url}/.well-known/jwks.json`));
    for (const [namespace, resource, audience, alg] of [
      ['orders', 'orders-reader', 'https://vault.example.com', 'ES256'],
      ['billing', 'billing', 'sts.amazonaws.com', 'RS256'],
    ] as const) {
      const body = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        subject_token: await t.devToken(namespace, 'order-service'),
        subject_token_type: JWT_TYPE,
        resource,
      });
      const response = await fetch(`${t.url}/v1/token`, { method: 'POST', body });
      const { access_token: token } = (await response.json()) as { access_token: string };
      const { protectedHeader } = await jwtVerify(token, jwks, {
        issuer: t.url,
        audience,
        algorithms: [alg],
      });
      expect(protectedHeader.alg).toBe(alg);
    }
  });
});
