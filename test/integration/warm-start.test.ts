import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** A broker fetches its clusters' keys when it starts, not when the first pod asks. */
let idp: OidcIssuer;
let t: TestApp;
beforeAll(async () => {
  idp = await startOidcIssuer({ path: '/warm' });
  t = await startTestApp({ clusters: [{ name: 'warm', issuer: idp.issuer, caFile: idp.caFile }] });
});
afterAll(async () => {
  await t?.close();
  await idp?.close();
});

describe('start-up', () => {
  it('ok/keys-fetched-before-any-token-and-reported-in-readyz', async () => {
    await vi.waitFor(() => expect(idp.requests('jwks')).toBe(1));
    expect(idp.requests('discovery')).toBe(1);
    const readiness = (await (await fetch(`${t.url}/readyz`)).json()) as { checks: { clusters: Array<Record<string, unknown>> } };
    expect(readiness.checks.clusters.find((cluster) => cluster.cluster === 'warm')).toMatchObject({ ready: true, stale: false });
  });
});
