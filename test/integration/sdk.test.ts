import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, ExchangeError, runAgent } from 'tessera/sdk';
import { startTestApp, type TestApp } from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
  dir = mkdtempSync(join(tmpdir(), 'tessera-sdk-'));
});
afterAll(async () => {
  await t?.close();
});

/** The real fetch, counted, to see how often the SDK goes to the broker. */
function countingFetch() {
  const calls: string[] = [];
  const wrapped: typeof fetch = (input, init) => {
    calls.push(String(input));
    return fetch(input, init);
  };
  return { calls, fetch: wrapped };
}

describe('sdk createClient', () => {
  it('getToken exchanges once and serves the cached token until it nears expiry', async () => {
    const tokenFile = join(dir, 'token-cache');
    writeFileSync(tokenFile, `${t.devToken('orders', 'order-service')}\n`);
    let clock = Date.now();
    const counter = countingFetch();
    const client = createClient({ endpoint: t.url, tokenFile, resource: 'orders-reader', fetch: counter.fetch, now: () => clock });
    const [first, concurrent] = await Promise.all([client.getToken(), client.getToken()]);
    expect(concurrent).toBe(first);
    expect(await client.getToken()).toBe(first);
    expect(counter.calls).toHaveLength(1);
    expect(decodeJwt(first).sub).toBe('system:serviceaccount:orders:order-service');

    // 80 % into the 15-minute lifetime the next call refreshes, re-reading the rotated SA token.
    writeFileSync(tokenFile, t.devToken('orders', 'order-worker'));
    clock += 0.81 * 900 * 1000;
    const refreshed = await client.getToken();
    expect(counter.calls).toHaveLength(2);
    expect(decodeJwt(refreshed).sub).toBe('system:serviceaccount:orders:order-worker');
  });

  it('a refusal is an ExchangeError with the RFC 6749 code', async () => {
    const tokenFile = join(dir, 'token-denied');
    writeFileSync(tokenFile, t.devToken('payments', 'order-service'));
    const client = createClient({ endpoint: t.url, tokenFile, resource: 'orders-reader' });
    const error = await client.getToken().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExchangeError);
    expect(error).toMatchObject({ status: 403, code: 'access_denied' });
  });

  it('runAgent keeps DIR/token fresh until stopped', async () => {
    const tokenFile = join(dir, 'token-agent');
    writeFileSync(tokenFile, t.devToken('orders', 'order-service'));
    const out = join(dir, 'agent');
    const controller = new AbortController();
    const writes: string[][] = [];
    const agent = runAgent({
      endpoint: t.url,
      tokenFile,
      resource: 'orders-reader',
      out,
      type: 'jwt',
      signal: controller.signal,
      onWrite: (files) => {
        writes.push(files);
        controller.abort();
      },
    });
    await agent;
    expect(writes).toEqual([['token']]);
    const token = readFileSync(join(out, 'token'), 'utf8');
    expect(token).not.toMatch(/\s$/);
    expect(decodeJwt(token).tessera).toEqual({ role: 'orders-reader', cluster: 'dev' });
  });
});
