import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { createMemoryCache, type SharedCache } from '../../../src/cache/index.js';
import type { ClusterConfig } from '../../../src/config/index.js';
import { createLogger, type Logger, type Metrics } from '../../../src/observability/index.js';
import { boundedMaxAge } from '../../../src/verifiers/index.js';
import { projectedClaims, startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { cluster, makeVerifier, manualClock, outcome } from './helpers.js';

/**
 * The JWKS cache against a real HTTPS issuer with its own CA: memory → SharedCache → issuer,
 * the 10 s refresh lock shared by replicas, one in-flight fetch per process, rotation, outages,
 * Cache-Control bounds and fetch limits. Clocks are frozen and moved by hand.
 */
let idp: OidcIssuer;
let clock: ReturnType<typeof manualClock>;
let cache: SharedCache;
let prod: ClusterConfig;

const UNAVAILABLE =
  '503 temporarily_unavailable: subject_token issuer keys are unavailable; retry later';
const tokenNow = (overrides: Record<string, unknown> = {}, header?: Record<string, unknown>) =>
  idp.sign(
    {
      ...projectedClaims(idp.issuer, {
        nowSeconds: Math.floor(clock.now() / 1000),
        lifetimeSeconds: 7 * 86400,
      }),
      ...overrides,
    },
    header,
  );
const newVerifier = (
  overrides: Partial<ClusterConfig> = {},
  options: { maxStaleSeconds?: number; metrics?: Metrics; logger?: Logger } = {},
) => makeVerifier([{ ...prod, ...overrides }], { now: clock.now, cache, ...options });
const staleGauge = async (metrics: Metrics) =>
  (await metrics.jwksStale.get()).values.find((value) => value.labels.cluster === 'prod')?.value;

beforeEach(async () => {
  idp = await startOidcIssuer({ path: '/prod' });
  clock = manualClock();
  cache = createMemoryCache({ now: clock.now });
  // Tokens live a week so the clock can move across key freshness and maxStale; the cluster says so.
  prod = cluster({
    name: 'prod',
    issuer: idp.issuer,
    caFile: idp.caFile,
    maxTokenLifetime: 7 * 86400,
  });
});
afterEach(async () => {
  await idp.close();
});

describe('discovery and fetch', () => {
  test('ok/discovery-then-jwks-over-https-with-caFile, then served from memory', async () => {
    const { verifier } = newVerifier();
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect([idp.requests('discovery'), idp.requests('jwks')]).toEqual([1, 1]);
    expect(verifier.status()).toEqual([
      {
        cluster: 'prod',
        issuer: idp.issuer,
        ready: true,
        stale: false,
        lastRefreshAt: clock.now(),
        keysFetchedAt: clock.now(),
      },
    ]);
  });

  test('ok/jwksUri-configured-skips-discovery', async () => {
    const { verifier } = newVerifier({ jwksUri: idp.jwksUri });
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect([idp.requests('discovery'), idp.requests('jwks')]).toEqual([0, 1]);
  });

  // status() feeds the unauthenticated /readyz: a coarse code there, the full text in the log only.
  const failures: Array<
    [string, (config: Partial<ClusterConfig>) => Partial<ClusterConfig>, () => void, string, RegExp]
  > = [
    [
      'fail/issuer-ca-not-trusted-without-caFile',
      () => ({ caFile: undefined }),
      () => {},
      'tls',
      /certificate/i,
    ],
    [
      'fail/caFile-unreadable',
      () => ({ caFile: '/nonexistent/ca.pem' }),
      () => {},
      'ca-file',
      /cannot read caFile \/nonexistent\/ca.pem/,
    ],
    [
      'fail/discovery-issuer-differs',
      (c) => c,
      () => idp.setDiscoveryOverride({ issuer: `${idp.issuer}/`, jwks_uri: idp.jwksUri }),
      'bad-discovery',
      /differs from the configured issuer/,
    ],
    [
      'fail/discovery-without-jwks_uri',
      (c) => c,
      () => idp.setDiscoveryOverride({ issuer: idp.issuer }),
      'bad-discovery',
      /no jwks_uri/,
    ],
    [
      'fail/jwks-over-256KiB',
      (c) => c,
      () =>
        idp.setJwksOverride({
          keys: [idp.currentKey().publicJwk],
          padding: 'x'.repeat(300 * 1024),
        }),
      'too-large',
      /exceeds/,
    ],
    [
      'fail/jwks-redirect-to-another-origin',
      (c) => c,
      () => idp.setJwksRedirect('https://localhost:1/openid/v1/jwks'),
      'redirect',
      /another origin/,
    ],
    [
      'fail/jwks-with-only-bad-keys',
      (c) => c,
      () => idp.setJwksOverride({ keys: [weakRsaJwk(), { kty: 'oct', k: 'AAAA' }] }),
      'bad-jwks',
      /no usable key/,
    ],
    [
      'fail/jwks-not-json',
      (c) => c,
      () => idp.setJwksOverride('not json'),
      'bad-jwks',
      /not a JSON object/,
    ],
    [
      'fail/issuer-down',
      (c) => c,
      () => idp.setDown(true),
      'unreachable',
      /socket|ECONNRESET|disconnected/i,
    ],
  ];
  test.each(failures)(
    '%s: 503 with nothing cached, a code in status(), the detail in the log',
    async (_name, configure, arrange, code, logged) => {
      arrange();
      const { logger, lines } = capturingLogger();
      const { verifier, metrics } = newVerifier(configure({}), { logger });
      expect(await outcome(verifier.verify(await tokenNow()))).toBe(UNAVAILABLE);
      expect(verifier.status()).toEqual([
        { cluster: 'prod', issuer: idp.issuer, ready: false, stale: false, lastError: code },
      ]);
      expect(lines.find((line) => line.msg === 'jwks refresh failed')).toMatchObject({
        cluster: 'prod',
        failure: code,
        err: expect.stringMatching(logged) as unknown,
      });
      expect((await metrics.jwksFetches.get()).values).toContainEqual({
        labels: { cluster: 'prod', result: 'error' },
        value: 1,
      });
    },
  );

  test('ok/same-origin-redirect-is-followed', async () => {
    const moved = await idp.addIssuer({ path: '/moved' });
    idp.setJwksRedirect(moved.jwksUri);
    const { verifier } = newVerifier();
    const token = await moved.sign({
      ...projectedClaims(idp.issuer, { nowSeconds: Math.floor(clock.now() / 1000) }),
    });
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect([idp.requests('jwks'), moved.requests('jwks')]).toEqual([1, 1]);
  });

  test('fail/same-origin-redirect-loop-stops-after-3-hops', async () => {
    idp.setJwksRedirect(`${idp.issuer}/openid/v1/jwks?again=1`);
    const { verifier } = newVerifier();
    expect(await outcome(verifier.verify(await tokenNow()))).toBe(UNAVAILABLE);
    expect(verifier.status()[0]?.lastError).toBe('redirect');
    expect(idp.requests('jwks')).toBe(4);
  });

  test('fail/jwks-fetch-times-out-after-5s (a real server that accepts and never answers)', async () => {
    const { server, url, sockets } = await silentServer();
    const { verifier } = newVerifier({ jwksUri: `${url}/openid/v1/jwks` });
    expect(await outcome(verifier.verify(await tokenNow()))).toBe(UNAVAILABLE);
    expect(verifier.status()[0]?.lastError).toBe('timeout');
    sockets.forEach((socket) => socket.destroy());
    server.close();
  }, 15_000);
});

describe('shared between replicas', () => {
  test('ok/a-second-verifier-sharing-the-cache-makes-zero-fetches', async () => {
    const first = newVerifier().verifier;
    expect(await outcome(first.verify(await tokenNow()))).toBe('ok');
    const fetchesAfterFirst = idp.requests();
    const second = newVerifier().verifier;
    for (let i = 0; i < 5; i += 1)
      expect(await outcome(second.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests()).toBe(fetchesAfterFirst);
    expect(second.status()[0]).toMatchObject({ ready: true, stale: false });
  });

  test('ok/unknown-kid-floods-across-two-replicas-fetch-at-most-once-per-10s', async () => {
    const replicas = [newVerifier().verifier, newVerifier().verifier];
    expect(await outcome(replicas[0]!.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(1);
    const flood = async () =>
      Promise.all(
        Array.from({ length: 60 }, async (_, i) =>
          outcome(replicas[i % 2]!.verify(await tokenNow({}, { kid: `made-up-${i}` }))),
        ),
      );
    expect(new Set(await flood())).toEqual(
      new Set(['400 invalid_request: subject_token signing key is unknown']),
    );
    expect(idp.requests('jwks')).toBe(1); // the initial fetch still holds the 10 s lock
    clock.advance(10_001);
    await flood();
    expect(idp.requests('jwks')).toBe(2);
    clock.advance(5_000);
    await flood();
    expect(idp.requests('jwks')).toBe(2);
    clock.advance(5_001);
    await flood();
    expect(idp.requests('jwks')).toBe(3);
  });

  test('ok/concurrent-cold-start-requests-share-one-fetch', async () => {
    const { verifier } = newVerifier();
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => outcome(verifier.verify(await tokenNow()))),
    );
    expect(new Set(results)).toEqual(new Set(['ok']));
    expect([idp.requests('discovery'), idp.requests('jwks')]).toEqual([1, 1]);
  });

  test('ok/issuer-rotation-is-picked-up-within-one-refresh', async () => {
    const { verifier } = newVerifier();
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    await idp.rotate();
    clock.advance(10_001);
    const rotatedToken = await tokenNow();
    const results = await Promise.all(
      Array.from({ length: 10 }, () => outcome(verifier.verify(rotatedToken))),
    );
    expect(new Set(results)).toEqual(new Set(['ok']));
    expect(idp.requests('jwks')).toBe(2);
  });

  test('ok/rotation-seen-by-another-replica-is-adopted-without-a-fetch', async () => {
    const [a, b] = [newVerifier().verifier, newVerifier().verifier];
    expect(await outcome(a.verify(await tokenNow()))).toBe('ok');
    expect(await outcome(b.verify(await tokenNow()))).toBe('ok');
    await idp.rotate();
    clock.advance(10_001);
    expect(await outcome(a.verify(await tokenNow()))).toBe('ok');
    expect(await outcome(b.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(2);
  });
});

describe('outages', () => {
  test('ok/issuer-down-known-keys-keep-working-until-maxStale, then 503, then recovery', async () => {
    const { verifier, metrics } = newVerifier({}, { maxStaleSeconds: 7200 });
    const token = await tokenNow();
    expect(await outcome(verifier.verify(token))).toBe('ok');
    idp.setDown(true);
    clock.advance(3600_000 + 1); // past max-age=3600
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(verifier.status()[0]).toMatchObject({
      ready: true,
      stale: true,
      lastError: 'unreachable',
    });
    expect(await staleGauge(metrics)).toBe(1);
    clock.advance(7200_000); // past maxStale
    expect(await outcome(verifier.verify(token))).toBe(UNAVAILABLE);
    expect(verifier.status()[0]).toMatchObject({ ready: false });
    idp.setDown(false);
    clock.advance(10_001);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(verifier.status()[0]).toMatchObject({ ready: true, stale: false });
    expect(verifier.status()[0]?.lastError).toBeUndefined();
    expect(await staleGauge(metrics)).toBe(0);
  });

  test('ok/a-replica-starting-during-an-outage-uses-the-shared-last-good-keys', async () => {
    const first = newVerifier().verifier;
    expect(await outcome(first.verify(await tokenNow()))).toBe('ok');
    idp.setDown(true);
    clock.advance(3600_000 + 1);
    const late = newVerifier().verifier;
    expect(await outcome(late.verify(await tokenNow()))).toBe('ok');
    expect(late.status()[0]).toMatchObject({ ready: true, stale: true });
  });
});

describe('Cache-Control max-age bounds', () => {
  test.each([
    ['max-age=3600', 3600],
    ['public, max-age=5', 60],
    ['max-age=999999', 86400],
    ['no-store', 60],
    ['no-cache, max-age=600', 60],
    ['private', 900],
    [undefined, 900],
    ['max-age=abc', 900],
  ])('ok/%s → %i s', (header, seconds) => {
    expect(boundedMaxAge(header)).toBe(seconds);
  });

  test('ok/max-age-below-1min-is-raised-to-1min', async () => {
    idp.setCacheControl('max-age=5');
    const { verifier } = newVerifier();
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    clock.advance(30_000);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(1);
    clock.advance(31_000);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(2);
  });

  test('ok/max-age-above-24h-is-capped-at-24h', async () => {
    idp.setCacheControl('max-age=999999');
    const { verifier } = newVerifier();
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    clock.advance(12 * 3600_000);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(1);
    clock.advance(12 * 3600_000 + 1);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(2);
  });

  test('ok/idle-broker-refreshes-before-expiry-without-a-request', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { verifier } = newVerifier();
      expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
      expect(idp.requests('jwks')).toBe(1);
      // No request arrives; the timer set at the fetch fires at 80 % of the hour's freshness.
      clock.advance(0.8 * 3600_000);
      await vi.advanceTimersByTimeAsync(0.8 * 3600_000);
      await vi.waitFor(() => expect(idp.requests('jwks')).toBe(2));
      // The server counts the request when it arrives; the verifier takes the keys a moment later.
      await vi.waitFor(() =>
        expect(verifier.status()[0]).toMatchObject({ stale: false, lastRefreshAt: clock.now() }),
      );
      await verifier.close();
    } finally {
      vi.useRealTimers();
    }
  });

  test('ok/background-refresh-before-expiry-keeps-answering-from-memory', async () => {
    const { verifier } = newVerifier();
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    clock.advance(0.85 * 3600_000);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    await vi.waitFor(() => expect(idp.requests('jwks')).toBe(2));
    expect(verifier.status()[0]).toMatchObject({ stale: false, lastRefreshAt: clock.now() });
  });
});

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  return { logger, lines };
}

function weakRsaJwk(): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return { ...publicKey.export({ format: 'jwk' }), kid: 'weak' };
}

/** Accepts TCP connections and never says a word, so a TLS handshake hangs until our timeout. */
async function silentServer(): Promise<{ server: Server; url: string; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}
