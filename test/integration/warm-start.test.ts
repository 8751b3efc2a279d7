import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** A broker fetches its clusters' keys when it starts, not when the first pod asks. */
let idp: OidcIssuer;
let t: TestApp;
beforeAll(async () => {
  idp = await startOidcIssuer({ path: '/warm' });
  const broken = await idp.addIssuer({ path: '/broken' });
  t = await startTestApp({
    clusters: [
      { name: 'warm', issuer: idp.issuer, caFile: idp.caFile },
      // Its keys cannot be fetched: /readyz, which anyone may read, must not tell where the file is.
      { name: 'broken', issuer: broken.issuer, caFile: '/nonexistent/private-dir/ca.pem' },
    ],
  });
});
afterAll(async () => {
  await t?.close();
  await idp?.close();
});

describe('start-up', () => {
  it('ok/keys-fetched-before-any-token-and-reported-in-readyz', async () => {
    await vi.waitFor(() => expect(idp.requests('jwks')).toBe(1));
    expect(idp.requests('discovery')).toBe(1);
    const readiness = (await (await fetch(`${t.url}/readyz`)).json()) as {
      checks: { clusters: Array<Record<string, unknown>> };
    };
    expect(readiness.checks.clusters.find((cluster) => cluster.cluster === 'warm')).toMatchObject({
      ready: true,
      stale: false,
    });
  });

  it('fail/a-cluster-whose-keys-cannot-be-fetched-shows-a-code-in-readyz, the detail only in the log', async () => {
    await vi.waitFor(() =>
      expect(
        t.logs.lines.some((line) =>
          line.includes('cannot read caFile /nonexistent/private-dir/ca.pem'),
        ),
      ).toBe(true),
    );
    const body = await (await fetch(`${t.url}/readyz`)).text();
    const readiness = JSON.parse(body) as { checks: { clusters: Array<Record<string, unknown>> } };
    expect(readiness.checks.clusters.find((cluster) => cluster.cluster === 'broken')).toEqual({
      cluster: 'broken',
      issuer: expect.stringMatching(/\/broken$/) as unknown,
      ready: false,
      stale: false,
      lastError: 'ca-file',
    });
    expect(body).not.toContain('nonexistent');
  });
});
