import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, JWT_TYPE, startTestApp, TOKEN_EXCHANGE, type TestApp } from '../support/app.js';

const exchange = (url: string, token: string) =>
  fetch(`${url}/v1/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: token,
      subject_token_type: JWT_TYPE,
      resource: 'demo',
    }),
  });

describe('separate listeners', () => {
  let t: TestApp;
  let publicUrl: string;
  let adminUrl: string;
  beforeAll(async () => {
    const [publicPort, adminPort] = [await freePort(), await freePort()];
    t = await startTestApp({
      publicListen: { host: '127.0.0.1', port: publicPort },
      adminListen: { host: '127.0.0.1', port: adminPort },
    });
    publicUrl = `http://127.0.0.1:${publicPort}`;
    adminUrl = `http://127.0.0.1:${adminPort}`;
  });
  afterAll(async () => t?.close());

  it('ok/public-listener-serves-discovery-jwks-and-trust-bundle-only', async () => {
    for (const path of [
      '/.well-known/openid-configuration',
      '/.well-known/jwks.json',
      '/v1/trust-bundle',
    ]) {
      expect((await fetch(`${publicUrl}${path}`)).status, path).toBe(200);
    }
    const token = await exchange(publicUrl, await t.devToken());
    expect(token.status).toBe(404);
    expect(await token.json()).toEqual({ error: 'not_found', error_description: 'no such route' });
    for (const path of ['/metrics', '/healthz', '/readyz', '/%72eadyz'])
      expect((await fetch(`${publicUrl}${path}`)).status, path).toBe(404);
  });

  it('ok/admin-listener-takes-the-operator-endpoints-off-the-token-listener', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      expect((await fetch(`${adminUrl}${path}`)).status, path).toBe(200);
      expect((await fetch(`${t.url}${path}`)).status, path).toBe(404);
    }
    expect((await exchange(adminUrl, await t.devToken())).status).toBe(404);
    expect((await fetch(`${adminUrl}/.well-known/jwks.json`)).status).toBe(404);
  });

  it('ok/the-main-listener-still-serves-exchanges-and-discovery', async () => {
    expect((await exchange(t.url, await t.devToken())).status).toBe(200);
    expect((await fetch(`${t.url}/.well-known/openid-configuration`)).status).toBe(200);
  });
});

describe('readiness', () => {
  it('fail/no-cluster-can-verify-a-token: readyz 503 while the only issuer is unreachable', async () => {
    const deadPort = await freePort();
    const t = await startTestApp({
      devCluster: undefined,
      clusters: [{ name: 'gone', issuer: `http://127.0.0.1:${deadPort}`, allowInsecure: true }],
    });
    try {
      await expect
        .poll(async () => (await fetch(`${t.url}/readyz`)).status, { timeout: 10_000 })
        .toBe(503);
      const body = (await (await fetch(`${t.url}/readyz`)).json()) as {
        checks: { clusters: Array<{ ready: boolean }> };
      };
      expect(body.checks.clusters.map((cluster) => cluster.ready)).toEqual([false]);
    } finally {
      await t.close();
    }
  });

  it('ok/draining: readyz 503 at once while exchanges are still served', async () => {
    const t = await startTestApp();
    try {
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      t.app.beginDrain();
      const ready = await fetch(`${t.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: { lifecycle?: string } }).checks.lifecycle).toBe(
        'draining',
      );
      expect((await exchange(t.url, await t.devToken())).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
