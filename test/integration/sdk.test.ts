import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClient, ExchangeError, runAgent } from 'tessera-sts/sdk';
import { tokenEndpoint } from '../../src/sdk/client.js';
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
    calls.push(input instanceof Request ? input.url : input.toString());
    return fetch(input, init);
  };
  return { calls, fetch: wrapped };
}

describe('sdk createClient', () => {
  it('getToken exchanges once and serves the cached token until it nears expiry', async () => {
    const tokenFile = join(dir, 'token-cache');
    writeFileSync(tokenFile, `${await t.devToken('orders', 'order-service')}\n`);
    let clock = Date.now();
    const counter = countingFetch();
    const client = createClient({
      endpoint: t.url,
      tokenFile,
      resource: 'orders-reader',
      fetch: counter.fetch,
      now: () => clock,
    });
    const [first, concurrent] = await Promise.all([client.getToken(), client.getToken()]);
    expect(concurrent).toBe(first);
    expect(await client.getToken()).toBe(first);
    expect(counter.calls).toHaveLength(1);
    expect(decodeJwt(first).sub).toBe('system:serviceaccount:orders:order-service');

    // 80 % into the 15-minute lifetime the next call refreshes, re-reading the rotated SA token.
    writeFileSync(tokenFile, await t.devToken('orders', 'order-worker'));
    clock += 0.81 * 900 * 1000;
    const refreshed = await client.getToken();
    expect(counter.calls).toHaveLength(2);
    expect(decodeJwt(refreshed).sub).toBe('system:serviceaccount:orders:order-worker');
  });

  it('a refusal is an ExchangeError with the RFC 6749 code', async () => {
    const tokenFile = join(dir, 'token-denied');
    writeFileSync(tokenFile, await t.devToken('payments', 'order-service'));
    const client = createClient({ endpoint: t.url, tokenFile, resource: 'orders-reader' });
    const error = await client.getToken().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExchangeError);
    expect(error).toMatchObject({ status: 403, code: 'access_denied' });
  });

  it.each([
    [
      'ok/base-path-kept',
      'https://gw.example.com/tessera/',
      false,
      'https://gw.example.com/tessera/v1/token',
    ],
    [
      'ok/base-path-without-slash',
      'https://gw.example.com/tessera',
      false,
      'https://gw.example.com/tessera/v1/token',
    ],
    ['ok/loopback-http', 'http://127.0.0.1:8080', false, 'http://127.0.0.1:8080/v1/token'],
    ['ok/http-when-allowed', 'http://tessera.svc:8080', true, 'http://tessera.svc:8080/v1/token'],
    [
      'fail/http-elsewhere',
      'http://tessera.svc:8080',
      false,
      'endpoint must be https (http only on loopback or with allowInsecure): http://tessera.svc:8080',
    ],
    ['fail/not-a-url', 'tessera', false, 'endpoint is not a URL: tessera'],
  ] as const)('token endpoint %s', (_name, endpoint, allowInsecure, expected) => {
    let result: string;
    try {
      result = tokenEndpoint(endpoint, allowInsecure).href;
    } catch (error) {
      result = (error as Error).message;
    }
    expect(result).toBe(expected);
  });

  it('runAgent renews at the refresh point, not before it', async () => {
    const tokenFile = join(dir, 'token-renew');
    writeFileSync(tokenFile, await t.devToken('orders', 'order-service'));
    const counter = countingFetch();
    const controller = new AbortController();
    const written: string[] = [];
    // The clock and the timers move together, as in a real pod.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const agent = runAgent({
        endpoint: t.url,
        tokenFile,
        resource: 'orders-reader',
        out: join(dir, 'agent-renew'),
        type: 'jwt',
        fetch: counter.fetch,
        signal: controller.signal,
        onWrite: () => {
          written.push(readFileSync(join(dir, 'agent-renew', 'token'), 'utf8'));
          if (written.length === 2) controller.abort();
        },
      });
      await vi.waitFor(() => expect(written).toHaveLength(1));
      // Nothing before the client's refresh point (80 % of 900 s)…
      await vi.advanceTimersByTimeAsync(715_000);
      expect(written).toHaveLength(1);
      // …then one new exchange and one new token.
      await vi.advanceTimersByTimeAsync(10_000);
      await vi.waitFor(() => expect(written).toHaveLength(2));
      await agent;
    } finally {
      vi.useRealTimers();
    }
    expect(counter.calls).toHaveLength(2);
    expect(written[1]).not.toBe(written[0]);
  });

  it('runAgent keeps DIR/token fresh until stopped', async () => {
    const tokenFile = join(dir, 'token-agent');
    writeFileSync(tokenFile, await t.devToken('orders', 'order-service'));
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

  it('runAgent stops with the reason when DIR cannot be made (under /proc)', async () => {
    // Node's recursive mkdir never settles for a path under /proc; the agent must fail instead.
    const out = `/proc/tessera-agent-${process.pid}/out`;
    await expect(
      runAgent({ endpoint: t.url, tokenFile: join(dir, 'none'), resource: 'x', out, type: 'jwt' }),
    ).rejects.toThrow(/ENOENT/);
  });
});
