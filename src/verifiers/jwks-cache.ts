import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { SharedCache } from '../cache/index.js';
import type { ClusterConfig } from '../config/index.js';
import { temporarilyUnavailable } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import { FETCH_TIMEOUT_MS, FetchError } from './http-get.js';
import { createJwksFetcher } from './jwks-fetch.js';
import { ingestJwks, type VerificationKey } from './verification-keys.js';
import type { ClusterStatus, KeyFetchFailure } from './types.js';

/** At most one fetch per issuer in this window, across every replica sharing the cache. */
export const REFRESH_INTERVAL_MS = 10_000;
/** Share of the freshness window after which a request triggers a background refresh. */
const BACKGROUND_REFRESH_AT = 0.8;
const WAIT_POLL_MS = 100;
/**
 * Inside the unknown-kid window, how often a replica looks for keys another one shared: a flood
 * of made-up kids must not become one shared-cache round trip per request.
 */
export const ADOPT_INTERVAL_MS = 1_000;
/** Longest wait of the idle refresh timer (Node's timers overflow past ~24.8 days anyway). */
const MAX_TIMER_MS = 24 * 3600 * 1000;

interface KeySet {
  keys: VerificationKey[];
  fetchedAt: number;
  freshUntil: number;
}

/**
 * What replicas share under `jwks:<issuer>`: public JWKs only, re-checked when read. Another
 * version of the broker (a rolling upgrade) may have written something else there.
 */
const sharedEntrySchema = z.object({
  fetchedAt: z.number(),
  freshUntil: z.number(),
  keys: z.array(z.record(z.string(), z.unknown())),
});
type SharedEntry = z.infer<typeof sharedEntrySchema>;

function parseSharedEntry(raw: string): SharedEntry | undefined {
  try {
    const parsed = sharedEntrySchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export interface KeySource {
  /** Keys usable now (fresh, or the last good ones within maxStale). Rejects with 503 when there are none. */
  current(): Promise<readonly VerificationKey[]>;
  /** After a token named a kid not in `seen`: newer keys from another replica, or a rate-limited fetch. */
  afterUnknownKid(seen: readonly VerificationKey[]): Promise<readonly VerificationKey[]>;
  status(): ClusterStatus;
  close(): Promise<void>;
}

export interface KeySourceDeps {
  cache: SharedCache;
  logger: Logger;
  metrics?: Metrics;
  now: () => number;
  maxStaleSeconds: number;
}

/**
 * A cluster's JWKS in layers: process memory → the SharedCache (Redis when configured) → the
 * issuer. A replica that finds fresh keys in the SharedCache does not fetch; fetches take a
 * shared 10 s lock per issuer, so a flood of made-up kids cannot hammer the issuer; concurrent
 * requests in one process share one in-flight fetch; a failed refresh keeps the last good
 * keys for up to `maxStaleSeconds` past their freshness.
 */
export function createKeySource(cluster: ClusterConfig, deps: KeySourceDeps): KeySource {
  const { cache, logger, metrics, now } = deps;
  const context = { cluster: cluster.name, issuer: cluster.issuer };
  const sharedKey = `jwks:${cluster.issuer}`;
  const lockKey = `jwks-lock:${cluster.issuer}`;
  const failureKey = `jwks-error:${cluster.issuer}`;
  const maxStaleMs = deps.maxStaleSeconds * 1000;
  const fetchKeys = createJwksFetcher(cluster, { logger });

  let memory: KeySet | undefined;
  let inflight: Promise<KeySet | undefined> | undefined;
  let refreshTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let lastUnknownKidRefreshAt = Number.NEGATIVE_INFINITY;
  let lastAdoptAt = Number.NEGATIVE_INFINITY;
  let reportedUnreadable = false;
  let lastRefreshAt: number | undefined;
  /** The coarse code status() shows; the full message goes to the log only. */
  let lastError: KeyFetchFailure | undefined;
  let lastErrorMessage: string | undefined;

  const isFresh = (set: KeySet | undefined): set is KeySet => set !== undefined && now() < set.freshUntil;
  const isUsable = (set: KeySet | undefined): set is KeySet => set !== undefined && now() < set.freshUntil + maxStaleMs;
  const wantsBackgroundRefresh = (set: KeySet): boolean => now() >= set.fetchedAt + (set.freshUntil - set.fetchedAt) * BACKGROUND_REFRESH_AT;
  let reportedStale = false;
  const reportStale = (stale: boolean): void => {
    if (stale === reportedStale) return;
    reportedStale = stale;
    metrics?.jwksStale.set({ cluster: cluster.name }, stale ? 1 : 0);
    if (stale) logger.warn({ ...context, failure: lastError, err: lastErrorMessage }, 'serving the last good jwks: the issuer cannot be refreshed');
  };

  /**
   * Keeps keys fresh without traffic: an idle broker refreshes before expiry too, so the first
   * request after a quiet hour never waits on the issuer. Failed refreshes retry no faster than
   * the shared refresh interval.
   */
  const scheduleRefresh = (set: KeySet): void => {
    clearTimeout(refreshTimer);
    if (closed) return;
    const due = set.fetchedAt + (set.freshUntil - set.fetchedAt) * BACKGROUND_REFRESH_AT;
    const delay = Math.min(Math.max(due - now(), REFRESH_INTERVAL_MS), MAX_TIMER_MS);
    refreshTimer = setTimeout(() => {
      void refresh((current) => isFresh(current) && !wantsBackgroundRefresh(current))
        .catch(() => undefined)
        .finally(() => memory && scheduleRefresh(memory));
    }, delay);
    refreshTimer.unref();
  };

  const remember = (set: KeySet): void => {
    memory = set;
    scheduleRefresh(set);
  };

  /** Takes the SharedCache's entry when it is newer than memory; an unreadable one counts as absent. */
  const adoptShared = async (): Promise<void> => {
    lastAdoptAt = now();
    const raw = await cache.get(sharedKey);
    if (raw === undefined) return;
    const entry = parseSharedEntry(raw);
    if (!entry) {
      if (!reportedUnreadable) logger.warn({ ...context, key: sharedKey }, 'ignoring an unreadable shared jwks entry');
      reportedUnreadable = true;
      return;
    }
    reportedUnreadable = false;
    if (memory && entry.fetchedAt <= memory.fetchedAt) return;
    const keys = ingestJwks({ keys: entry.keys }, logger, { ...context, source: 'shared cache' });
    if (keys.length > 0) remember({ keys, fetchedAt: entry.fetchedAt, freshUntil: entry.freshUntil });
  };

  const fetchAndShare = async (): Promise<KeySet | undefined> => {
    const started = performance.now();
    const took = () => (performance.now() - started) / 1000;
    try {
      const fetched = await fetchKeys();
      metrics?.jwksFetchDuration.observe({ cluster: cluster.name, result: 'ok' }, took());
      const fetchedAt = now();
      const set: KeySet = { keys: fetched.keys, fetchedAt, freshUntil: fetchedAt + fetched.maxAgeSeconds * 1000 };
      remember(set);
      lastRefreshAt = fetchedAt;
      lastError = undefined;
      lastErrorMessage = undefined;
      metrics?.jwksFetches.inc({ cluster: cluster.name, result: 'ok' });
      const entry: SharedEntry = { fetchedAt, freshUntil: set.freshUntil, keys: set.keys.map((key) => key.jwk) };
      await cache.set(sharedKey, JSON.stringify(entry), set.freshUntil - fetchedAt + maxStaleMs);
      logger.info({ ...context, keys: set.keys.length, maxAgeSeconds: fetched.maxAgeSeconds }, 'jwks refreshed');
      return set;
    } catch (error) {
      lastError = error instanceof FetchError ? error.failure : 'unknown';
      lastErrorMessage = error instanceof Error ? error.message : String(error);
      metrics?.jwksFetchDuration.observe({ cluster: cluster.name, result: 'error' }, took());
      metrics?.jwksFetches.inc({ cluster: cluster.name, result: 'error' });
      logger.warn({ ...context, failure: lastError, err: lastErrorMessage, keptKeys: memory?.keys.length ?? 0 }, 'jwks refresh failed');
      await cache.set(failureKey, lastError, REFRESH_INTERVAL_MS);
      return undefined;
    }
  };

  /**
   * One refresh at a time in this process. Another replica may have refreshed meanwhile (then
   * its keys are taken); else the shared lock decides who fetches.
   */
  const refresh = (accept: (set: KeySet | undefined) => boolean): Promise<KeySet | undefined> => {
    inflight ??= (async () => {
      await adoptShared();
      if (accept(memory)) return memory;
      if (!(await cache.acquireLock(lockKey, REFRESH_INTERVAL_MS))) return undefined;
      return fetchAndShare();
    })().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };

  /** Nothing usable here while another replica holds the lock: wait for what it shares. */
  const waitForOtherReplica = async (): Promise<KeySet | undefined> => {
    for (let waited = 0; waited <= FETCH_TIMEOUT_MS + 1000; waited += WAIT_POLL_MS) {
      await adoptShared();
      if (isUsable(memory)) return memory;
      if (await cache.get(failureKey)) return undefined;
      await sleep(WAIT_POLL_MS);
    }
    return undefined;
  };

  const unavailable = () =>
    temporarilyUnavailable('subject_token issuer keys are unavailable; retry later', {
      detail: { ...context, reason: lastErrorMessage ?? 'no keys', failure: lastError },
    });

  return {
    async current() {
      const cached = memory;
      if (isFresh(cached)) {
        reportStale(false);
        if (wantsBackgroundRefresh(cached)) void refresh((set) => isFresh(set) && !wantsBackgroundRefresh(set)).catch(() => undefined);
        return cached.keys;
      }
      const refreshed = await refresh(isFresh);
      if (refreshed) {
        reportStale(false);
        return refreshed.keys;
      }
      const lastGood = memory as KeySet | undefined;
      if (isUsable(lastGood)) {
        reportStale(true);
        return lastGood.keys;
      }
      const waited = lastGood ? undefined : await waitForOtherReplica();
      if (waited) return waited.keys;
      reportStale(false);
      throw unavailable();
    },

    async afterUnknownKid(seen) {
      const seenFetchedAt = memory?.keys === seen ? memory.fetchedAt : Number.NEGATIVE_INFINITY;
      const newer = (set: KeySet | undefined): boolean => set !== undefined && set.fetchedAt > seenFetchedAt;
      if (!inflight && now() - lastUnknownKidRefreshAt < REFRESH_INTERVAL_MS) {
        if (now() - lastAdoptAt >= ADOPT_INTERVAL_MS) await adoptShared();
        return isUsable(memory) ? memory.keys : seen;
      }
      lastUnknownKidRefreshAt = now();
      const refreshed = await refresh(newer);
      return refreshed?.keys ?? (isUsable(memory) ? memory.keys : seen);
    },

    status() {
      const usable = isUsable(memory);
      return {
        cluster: cluster.name,
        issuer: cluster.issuer,
        ready: usable,
        stale: usable && !isFresh(memory),
        ...(lastRefreshAt !== undefined ? { lastRefreshAt } : {}),
        ...(memory ? { keysFetchedAt: memory.fetchedAt } : {}),
        ...(lastError !== undefined ? { lastError } : {}),
      };
    },

    async close() {
      closed = true;
      clearTimeout(refreshTimer);
      await inflight;
    },
  };
}

/** Static keys from the config (air-gapped clusters): never fetched, never stale. */
export function createStaticKeySource(cluster: ClusterConfig, logger: Logger): KeySource {
  const keys = ingestJwks(cluster.jwks, logger, { cluster: cluster.name, issuer: cluster.issuer, source: 'config' });
  if (keys.length === 0) logger.error({ cluster: cluster.name }, 'static jwks has no usable key: every token of this cluster will be refused');
  return {
    async current() {
      return keys;
    },
    async afterUnknownKid() {
      return keys;
    },
    status: () => ({ cluster: cluster.name, issuer: cluster.issuer, ready: keys.length > 0, stale: false }),
    async close() {},
  };
}
