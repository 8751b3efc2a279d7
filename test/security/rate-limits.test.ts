import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

/**
 * Rate limits are on unless turned off, keyed on the client behind trusted proxies (not on the
 * ingress every client shares) before verification, and on the workload identity after it.
 */
const clock = 1_800_000_000_000;
let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const start = (input: Record<string, unknown>) =>
  startTestApp({ policies: writePolicies(ENDPOINT_ROLES), ...input }, { now: () => clock });
const post = async (app: TestApp, body: string, forwardedFor?: string) => {
  const response = await fetch(`${app.url}/v1/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(forwardedFor && { 'x-forwarded-for': forwardedFor }),
    },
    body,
  });
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    json: (await response.json()) as Record<string, unknown>,
  };
};
const garbage = exchangeForm({
  grant_type: TOKEN_EXCHANGE,
  subject_token: 'not-a-token',
  subject_token_type: JWT_TYPE,
  resource: 'orders-reader',
});
const valid = async (app: TestApp, serviceAccount = 'order-service') =>
  exchangeForm({
    grant_type: TOKEN_EXCHANGE,
    subject_token: await app.devToken('orders', serviceAccount, { now: Math.floor(clock / 1000) }),
    subject_token_type: JWT_TYPE,
    resource: 'orders-reader',
  });
const statuses = async (
  count: number,
  send: (index: number) => Promise<{ status: number }>,
): Promise<number[]> => {
  const out: number[] = [];
  for (let index = 0; index < count; index += 1) out.push((await send(index)).status);
  return out;
};

describe('rate limits', () => {
  it('ok/on-by-default-per-client-address', async () => {
    const config = parseConfig({ issuer: 'https://sts.example.com', audience: 'x' });
    expect(config.rateLimit).toEqual({
      enabled: true,
      perSecond: 50,
      burst: 100,
      perIdentity: { perSecond: 20, burst: 100 },
    });
    expect(config.trustedProxies).toEqual([]);

    t = await start({ rateLimit: {} });
    const answers = await statuses(100, () => post(t as TestApp, garbage));
    expect(new Set(answers)).toEqual(new Set([400]));
    const limited = await post(t, garbage);
    expect(limited).toEqual({
      status: 429,
      retryAfter: '1',
      json: { error: 'slow_down', error_description: 'too many requests; retry later' },
    });
  });

  it('ok/disabled-only-when-said', async () => {
    t = await start({ rateLimit: { enabled: false, burst: 1 } });
    expect(new Set(await statuses(5, () => post(t as TestApp, garbage)))).toEqual(new Set([400]));
  });

  it('fail/forwarded-for-from-an-untrusted-peer-is-not-believed', async () => {
    t = await start({ rateLimit: { perSecond: 1, burst: 2 } });
    const answers = await statuses(3, (index) =>
      post(t as TestApp, garbage, `198.51.100.${index}`),
    );
    expect(answers).toEqual([400, 400, 429]);
  });

  it('ok/behind-a-trusted-proxy-each-client-has-its-own-bucket', async () => {
    t = await start({
      rateLimit: { perSecond: 1, burst: 2 },
      trustedProxies: ['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8'],
    });
    // The right-most untrusted address is the client; what it wrote further left is not believed.
    const first = await statuses(3, (index) =>
      post(t as TestApp, garbage, `192.0.2.${index}, 203.0.113.7, 10.1.2.3`),
    );
    expect(first).toEqual([400, 400, 429]);
    // Another client behind the same ingress is not starved by the first (IPv6 alike).
    expect(await statuses(2, () => post(t as TestApp, garbage, '203.0.113.8'))).toEqual([400, 400]);
    expect(await statuses(3, () => post(t as TestApp, garbage, '2001:db8::1, fd00::5'))).toEqual([
      400, 400, 429,
    ]);
  });

  it('ok/per-workload-identity-after-verification', async () => {
    t = await start({
      rateLimit: { perSecond: 100, burst: 100, perIdentity: { perSecond: 1, burst: 2 } },
      trustedProxies: ['127.0.0.1/32'],
    });
    // One service account from three pods (three addresses): one bucket.
    const sameAccount = await statuses(3, async (index) =>
      post(t as TestApp, await valid(t as TestApp), `203.0.113.${index + 1}`),
    );
    expect(sameAccount).toEqual([200, 200, 429]);
    // Another service account of the same namespace has its own.
    expect((await post(t, await valid(t, 'order-worker'), '203.0.113.1')).status).toBe(200);
    // Garbage never reaches the identity limit, so it cannot spend a workload's budget.
    expect((await post(t, garbage, '203.0.113.9')).status).toBe(400);
  });
});
