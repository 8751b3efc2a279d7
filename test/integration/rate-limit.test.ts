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

let t: TestApp;
let clock = 1_800_000_000_000;
beforeAll(async () => {
  t = await startTestApp(
    { policies: writePolicies(ENDPOINT_ROLES), rateLimit: { perSecond: 1, burst: 2 } },
    { now: () => clock },
  );
});
afterAll(async () => {
  await t?.close();
});

describe('rate limit', () => {
  it('answers 429 slow_down with Retry-After past the burst, and recovers as the bucket refills', async () => {
    const body = async () =>
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: await t.devToken('orders', 'order-service', {
          now: Math.floor(clock / 1000),
        }),
        subject_token_type: JWT_TYPE,
        resource: 'orders-reader',
      });
    expect((await postToken(t.url, await body())).status).toBe(200);
    expect((await postToken(t.url, await body())).status).toBe(200);
    const limited = await postToken(t.url, await body());
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({
      error: 'slow_down',
      error_description: 'too many requests; retry later',
    });
    expect(limited.headers.get('retry-after')).toBe('1');
    clock += 1000;
    expect((await postToken(t.url, await body())).status).toBe(200);
  });
});
