import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createMemoryCache, type SharedCache } from '../../../src/cache/index.js';
import type { ClusterConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/observability/index.js';
import { projectedClaims, startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { cluster, makeVerifier, manualClock, outcome } from './helpers.js';

/**
 * What the JWKS cache reads back from the shared cache is a boundary: another version of the
 * broker (a rolling upgrade) or an operator may have written anything under `jwks:<issuer>`.
 * Also: how often the unknown-kid path reads the shared cache, and what an unexpected fault
 * inside verification becomes.
 */
let idp: OidcIssuer;
let clock: ReturnType<typeof manualClock>;
let prod: ClusterConfig;

beforeEach(async () => {
  idp = await startOidcIssuer({ path: '/shared' });
  clock = manualClock();
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

const tokenNow = (header?: Record<string, unknown>) =>
  idp.sign(
    projectedClaims(idp.issuer, {
      nowSeconds: Math.floor(clock.now() / 1000),
      lifetimeSeconds: 7 * 86400,
    }),
    header,
  );

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  return { logger, lines, messages: (msg: string) => lines.filter((line) => line.msg === msg) };
}

/** A real memory cache that counts reads per key. */
function countingCache(inner: SharedCache): SharedCache & { reads: (key: string) => number } {
  const reads = new Map<string, number>();
  return {
    ...inner,
    kind: inner.kind,
    get: (key) => {
      reads.set(key, (reads.get(key) ?? 0) + 1);
      return inner.get(key);
    },
    set: (key, value, ttlMs) => inner.set(key, value, ttlMs),
    delete: (key) => inner.delete(key),
    acquireLock: (key, ttlMs) => inner.acquireLock(key, ttlMs),
    healthy: () => inner.healthy(),
    close: () => inner.close(),
    reads: (key) => reads.get(key) ?? 0,
  };
}

const UNREADABLE = 'ignoring an unreadable shared jwks entry';

describe('unreadable shared entries are ignored and the issuer is fetched', () => {
  const entries: Array<[string, (now: number) => string]> = [
    ['ok/entry-null', () => 'null'],
    ['ok/entry-a-json-string', () => '"jwks"'],
    ['ok/entry-not-json', () => '{not json'],
    ['ok/entry-an-array', () => '[1,2]'],
    [
      'ok/entry-without-keys',
      (now) => JSON.stringify({ fetchedAt: now, freshUntil: now + 3600_000 }),
    ],
    [
      'ok/entry-keys-not-an-array',
      (now) => JSON.stringify({ fetchedAt: now, freshUntil: now + 3600_000, keys: 'x' }),
    ],
    [
      'ok/entry-keys-of-strings',
      (now) => JSON.stringify({ fetchedAt: now, freshUntil: now + 3600_000, keys: ['a', null] }),
    ],
    [
      'ok/entry-fetchedAt-a-string',
      (now) => JSON.stringify({ fetchedAt: String(now), freshUntil: now + 3600_000, keys: [] }),
    ],
    ['ok/entry-without-freshUntil', (now) => JSON.stringify({ fetchedAt: now, keys: [] })],
  ];

  test.each(entries)('%s', async (_name, entry) => {
    const cache = createMemoryCache({ now: clock.now });
    const { logger, messages } = capturingLogger();
    await cache.set(`jwks:${idp.issuer}`, entry(clock.now()), 3600_000);
    const { verifier } = makeVerifier([prod], { now: clock.now, cache, logger });
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(1);
    expect(messages(UNREADABLE)).toEqual([
      expect.objectContaining({ level: 40, cluster: 'prod', issuer: idp.issuer }),
    ]);
    expect(JSON.parse((await cache.get(`jwks:${idp.issuer}`)) as string)).toMatchObject({
      fetchedAt: clock.now(),
      keys: [expect.any(Object)],
    });
  });

  test('ok/unreadable-entries-are-logged-once-per-cluster', async () => {
    const cache = createMemoryCache({ now: clock.now });
    const { logger, messages } = capturingLogger();
    const { verifier } = makeVerifier([prod], { now: clock.now, cache, logger });
    await cache.set(`jwks:${idp.issuer}`, 'null', 3600_000);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    clock.advance(3600_000 + 1); // past max-age: memory is no longer fresh, the shared cache is read again
    await cache.set(`jwks:${idp.issuer}`, 'null', 3600_000);
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    expect(idp.requests('jwks')).toBe(2);
    expect(messages(UNREADABLE)).toHaveLength(1);
  });
});

describe('an unexpected fault inside verification', () => {
  test('fail/is-503-temporarily_unavailable-and-logged, not a 400 that tells the client not to retry', async () => {
    const broken: SharedCache = {
      ...createMemoryCache({ now: clock.now }),
      kind: 'memory',
      get: () => Promise.reject(new TypeError('boom')),
    };
    const { logger, messages } = capturingLogger();
    const { verifier } = makeVerifier([prod], { now: clock.now, cache: broken, logger });
    expect(await outcome(verifier.verify(await tokenNow()))).toBe(
      '503 temporarily_unavailable: subject_token cannot be verified right now; retry later',
    );
    expect(messages('unexpected error while verifying a subject token')).toEqual([
      expect.objectContaining({
        level: 50,
        err: expect.objectContaining({ type: 'TypeError', message: 'boom' }) as unknown,
      }),
    ]);
  });
});

describe('unknown kids inside the 10 s window', () => {
  test('ok/shared-cache-read-at-most-once-per-second-per-issuer', async () => {
    const cache = countingCache(createMemoryCache({ now: clock.now }));
    const { verifier } = makeVerifier([prod], { now: clock.now, cache });
    expect(await outcome(verifier.verify(await tokenNow()))).toBe('ok');
    const flood = async () => {
      const before = cache.reads(`jwks:${idp.issuer}`);
      const tokens = await Promise.all(
        Array.from({ length: 50 }, (_, i) => tokenNow({ kid: `made-up-${i}` })),
      );
      const results = await Promise.all(tokens.map((token) => outcome(verifier.verify(token))));
      expect(new Set(results)).toEqual(
        new Set(['400 invalid_request: subject_token signing key is unknown']),
      );
      return cache.reads(`jwks:${idp.issuer}`) - before;
    };
    clock.advance(10_001);
    expect(await flood()).toBe(1); // the window opens: one refresh, which reads the shared cache first
    expect(idp.requests('jwks')).toBe(2);
    clock.advance(500);
    expect(await flood()).toBe(0); // inside the window, not one read per request…
    clock.advance(600);
    expect(await flood()).toBe(1); // …but one a second, to pick up another replica's keys
    expect(await flood()).toBe(0);
    expect(idp.requests('jwks')).toBe(2);
  });

  test('ok/a-rotation-fetched-by-another-replica-is-still-adopted-inside-the-window', async () => {
    const cache = createMemoryCache({ now: clock.now });
    const [a, b] = [
      makeVerifier([prod], { now: clock.now, cache }).verifier,
      makeVerifier([prod], { now: clock.now, cache }).verifier,
    ];
    expect(await outcome(a.verify(await tokenNow()))).toBe('ok');
    expect(await outcome(b.verify(await tokenNow()))).toBe('ok');
    clock.advance(1000);
    expect(await outcome(b.verify(await tokenNow({ kid: 'made-up' })))).toBe(
      '400 invalid_request: subject_token signing key is unknown',
    );
    await idp.rotate();
    clock.advance(9500); // a's fetch lock has expired; b is still inside its 10 s unknown-kid window
    expect(await outcome(a.verify(await tokenNow()))).toBe('ok'); // a fetches the rotated keys and shares them
    expect(await outcome(b.verify(await tokenNow()))).toBe('ok'); // b adopts them without a fetch
    expect(idp.requests('jwks')).toBe(2);
  });
});
