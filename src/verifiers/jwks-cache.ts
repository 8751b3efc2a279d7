import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { SharedCache } from '../cache/index.js';
import type { ClusterConfig } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { FETCH_TIMEOUT_MS, FetchError } from './http-get.js';
import { createJwksFetcher, type FetchedKeys } from './jwks-fetch.js';
import { refuse } from './refusals.js';
import { ingestJwks, type VerificationKey } from './verification-keys.js';
import type { ClusterStatus, KeyFetchFailure } from './types.js';

/** At most one fetch per issuer in this window, across every replica sharing the cache. */
const REFRESH_INTERVAL_MS = 10_000;
/** Share of the freshness window after which a request triggers a background refresh. */
const BACKGROUND_REFRESH_AT = 0.8;
const WAIT_POLL_MS = 100;
/**
 * Inside the unknown-kid window, how often a replica looks for keys another one shared: a flood
 * of made-up kids must not become one shared-cache round trip per request.
 */
const ADOPT_INTERVAL_MS = 1_000;
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

/** One cluster's key source: what it was built with, and what it has learnt since. */
interface Source {
  cluster: ClusterConfig;
  deps: KeySourceDeps;
  /** Log context: which cluster and issuer. */
  context: { cluster: string; issuer: string };
  /** SharedCache keys: the keys replicas share, the fetch lock, and the last fetch failure. */
  sharedKey: string;
  lockKey: string;
  failureKey: string;
  maxStaleMs: number;
  fetchKeys: () => Promise<FetchedKeys>;
  memory: KeySet | undefined;
  inflight: Promise<KeySet | undefined> | undefined;
  refreshTimer: NodeJS.Timeout | undefined;
  closed: boolean;
  lastUnknownKidRefreshAt: number;
  lastAdoptAt: number;
  reportedUnreadable: boolean;
  reportedStale: boolean;
  lastRefreshAt: number | undefined;
  /** The coarse code status() shows; the full message goes to the log only. */
  lastError: KeyFetchFailure | undefined;
  lastErrorMessage: string | undefined;
}

/**
 * A cluster's JWKS in layers: process memory → the SharedCache (Redis when configured) → the
 * issuer. A replica that finds fresh keys in the SharedCache does not fetch; fetches take a
 * shared 10 s lock per issuer, so a flood of made-up kids cannot hammer the issuer; concurrent
 * requests in one process share one in-flight fetch; a failed refresh keeps the last good
 * keys for up to `maxStaleSeconds` past their freshness.
 */
export function createKeySource(cluster: ClusterConfig, deps: KeySourceDeps): KeySource {
  const source: Source = {
    cluster,
    deps,
    context: { cluster: cluster.name, issuer: cluster.issuer },
    sharedKey: `jwks:${cluster.issuer}`,
    lockKey: `jwks-lock:${cluster.issuer}`,
    failureKey: `jwks-error:${cluster.issuer}`,
    maxStaleMs: deps.maxStaleSeconds * 1000,
    fetchKeys: createJwksFetcher(cluster, { logger: deps.logger }),
    memory: undefined,
    inflight: undefined,
    refreshTimer: undefined,
    closed: false,
    lastUnknownKidRefreshAt: Number.NEGATIVE_INFINITY,
    lastAdoptAt: Number.NEGATIVE_INFINITY,
    reportedUnreadable: false,
    reportedStale: false,
    lastRefreshAt: undefined,
    lastError: undefined,
    lastErrorMessage: undefined,
  };
  return {
    current: () => currentKeys(source),
    afterUnknownKid: (seen) => keysAfterUnknownKid(source, seen),
    status: () => sourceStatus(source),
    close: () => closeSource(source),
  };
}

const isFresh = (source: Source, set: KeySet | undefined): set is KeySet =>
  set !== undefined && source.deps.now() < set.freshUntil;
const isUsable = (source: Source, set: KeySet | undefined): set is KeySet =>
  set !== undefined && source.deps.now() < set.freshUntil + source.maxStaleMs;
const backgroundRefreshAt = (set: KeySet): number =>
  set.fetchedAt + (set.freshUntil - set.fetchedAt) * BACKGROUND_REFRESH_AT;
const wantsBackgroundRefresh = (source: Source, set: KeySet): boolean =>
  source.deps.now() >= backgroundRefreshAt(set);
/** What a background refresh is content with: keys that are fresh and not yet due for refresh. */
const freshEnough = (source: Source) => (set: KeySet | undefined) =>
  isFresh(source, set) && !wantsBackgroundRefresh(source, set);

/** Keys usable now: fresh ones, else a refresh, else the last good ones within maxStale, else 503. */
async function currentKeys(source: Source): Promise<readonly VerificationKey[]> {
  const cached = source.memory;
  if (isFresh(source, cached)) {
    reportStale(source, false);
    if (wantsBackgroundRefresh(source, cached))
      void refresh(source, freshEnough(source)).catch(() => undefined);
    return cached.keys;
  }
  const refreshed = await refresh(source, (set) => isFresh(source, set));
  if (refreshed) {
    reportStale(source, false);
    return refreshed.keys;
  }
  const lastGood = source.memory;
  if (isUsable(source, lastGood)) {
    reportStale(source, true);
    return lastGood.keys;
  }
  const waited = lastGood ? undefined : await waitForOtherReplica(source);
  if (waited) return waited.keys;
  reportStale(source, false);
  throw refuse('keys_unavailable', {
    ...source.context,
    failure: source.lastError,
    error: source.lastErrorMessage ?? 'no keys',
  });
}

/**
 * After a token named a kid not in `seen`: a rate-limited refresh (one per 10 s per issuer),
 * and inside that window, at most one look per second at what another replica shared.
 */
async function keysAfterUnknownKid(
  source: Source,
  seen: readonly VerificationKey[],
): Promise<readonly VerificationKey[]> {
  const { now } = source.deps;
  const seenFetchedAt =
    source.memory?.keys === seen ? source.memory.fetchedAt : Number.NEGATIVE_INFINITY;
  if (!source.inflight && now() - source.lastUnknownKidRefreshAt < REFRESH_INTERVAL_MS) {
    if (now() - source.lastAdoptAt >= ADOPT_INTERVAL_MS) await adoptShared(source);
    return isUsable(source, source.memory) ? source.memory.keys : seen;
  }
  source.lastUnknownKidRefreshAt = now();
  const refreshed = await refresh(
    source,
    (set) => set !== undefined && set.fetchedAt > seenFetchedAt,
  );
  return refreshed?.keys ?? (isUsable(source, source.memory) ? source.memory.keys : seen);
}

function sourceStatus(source: Source): ClusterStatus {
  const { memory, lastRefreshAt, lastError } = source;
  const usable = isUsable(source, memory);
  return {
    cluster: source.cluster.name,
    issuer: source.cluster.issuer,
    ready: usable,
    stale: usable && !isFresh(source, memory),
    ...(lastRefreshAt !== undefined ? { lastRefreshAt } : {}),
    ...(memory ? { keysFetchedAt: memory.fetchedAt } : {}),
    ...(lastError !== undefined ? { lastError } : {}),
  };
}

async function closeSource(source: Source): Promise<void> {
  source.closed = true;
  clearTimeout(source.refreshTimer);
  await source.inflight;
}

/** Logs and counts only the changes between fresh and stale keys, not every request. */
function reportStale(source: Source, stale: boolean): void {
  if (stale === source.reportedStale) return;
  source.reportedStale = stale;
  source.deps.metrics?.jwksStale.set({ cluster: source.cluster.name }, stale ? 1 : 0);
  if (stale) {
    source.deps.logger.warn(
      { ...source.context, failure: source.lastError, err: source.lastErrorMessage },
      'serving the last good jwks: the issuer cannot be refreshed',
    );
  }
}

/**
 * Keeps keys fresh without traffic: an idle broker refreshes before expiry too, so the first
 * request after a quiet hour never waits on the issuer. Failed refreshes retry no faster than
 * the shared refresh interval.
 */
function scheduleRefresh(source: Source, set: KeySet): void {
  clearTimeout(source.refreshTimer);
  if (source.closed) return;
  const delay = Math.min(
    Math.max(backgroundRefreshAt(set) - source.deps.now(), REFRESH_INTERVAL_MS),
    MAX_TIMER_MS,
  );
  source.refreshTimer = setTimeout(() => {
    void refresh(source, freshEnough(source))
      .catch(() => undefined)
      .finally(() => source.memory && scheduleRefresh(source, source.memory));
  }, delay);
  source.refreshTimer.unref();
}

function remember(source: Source, set: KeySet): void {
  source.memory = set;
  scheduleRefresh(source, set);
}

/** Takes the SharedCache's entry when it is newer than memory; an unreadable one counts as absent. */
async function adoptShared(source: Source): Promise<void> {
  source.lastAdoptAt = source.deps.now();
  const raw = await source.deps.cache.get(source.sharedKey);
  if (raw === undefined) return;
  const entry = parseSharedEntry(raw);
  if (!entry) {
    if (!source.reportedUnreadable)
      source.deps.logger.warn(
        { ...source.context, key: source.sharedKey },
        'ignoring an unreadable shared jwks entry',
      );
    source.reportedUnreadable = true;
    return;
  }
  source.reportedUnreadable = false;
  if (source.memory && entry.fetchedAt <= source.memory.fetchedAt) return;
  const keys = ingestJwks({ keys: entry.keys }, source.deps.logger, {
    ...source.context,
    source: 'shared cache',
  });
  if (keys.length > 0)
    remember(source, { keys, fetchedAt: entry.fetchedAt, freshUntil: entry.freshUntil });
}

/**
 * One refresh at a time in this process. Another replica may have refreshed meanwhile (then
 * its keys are taken); else the shared lock decides who fetches.
 */
function refresh(
  source: Source,
  accept: (set: KeySet | undefined) => boolean,
): Promise<KeySet | undefined> {
  source.inflight ??= (async () => {
    await adoptShared(source);
    if (accept(source.memory)) return source.memory;
    if (!(await source.deps.cache.acquireLock(source.lockKey, REFRESH_INTERVAL_MS)))
      return undefined;
    return fetchAndShare(source);
  })().finally(() => {
    source.inflight = undefined;
  });
  return source.inflight;
}

/** Fetches from the issuer, then keeps the keys and shares them; a failure is recorded, never thrown. */
async function fetchAndShare(source: Source): Promise<KeySet | undefined> {
  const started = performance.now();
  const observe = (result: 'ok' | 'error') => {
    source.deps.metrics?.jwksFetchDuration.observe(
      { cluster: source.cluster.name, result },
      (performance.now() - started) / 1000,
    );
    source.deps.metrics?.jwksFetches.inc({ cluster: source.cluster.name, result });
  };
  try {
    const fetched = await source.fetchKeys();
    observe('ok');
    return await shareFetched(source, fetched);
  } catch (error) {
    observe('error');
    await recordFetchFailure(source, error);
    return undefined;
  }
}

async function shareFetched(source: Source, fetched: FetchedKeys): Promise<KeySet> {
  const fetchedAt = source.deps.now();
  const set: KeySet = {
    keys: fetched.keys,
    fetchedAt,
    freshUntil: fetchedAt + fetched.maxAgeSeconds * 1000,
  };
  remember(source, set);
  source.lastRefreshAt = fetchedAt;
  source.lastError = undefined;
  source.lastErrorMessage = undefined;
  const entry: SharedEntry = {
    fetchedAt,
    freshUntil: set.freshUntil,
    keys: set.keys.map((key) => key.jwk),
  };
  await source.deps.cache.set(
    source.sharedKey,
    JSON.stringify(entry),
    set.freshUntil - fetchedAt + source.maxStaleMs,
  );
  source.deps.logger.info(
    { ...source.context, keys: set.keys.length, maxAgeSeconds: fetched.maxAgeSeconds },
    'jwks refreshed',
  );
  return set;
}

/** Keeps the failure for status() and the log, and tells replicas waiting on the lock to stop waiting. */
async function recordFetchFailure(source: Source, error: unknown): Promise<void> {
  const failure: KeyFetchFailure = error instanceof FetchError ? error.failure : 'unknown';
  source.lastError = failure;
  source.lastErrorMessage = error instanceof Error ? error.message : 'unknown error';
  source.deps.logger.warn(
    {
      ...source.context,
      failure,
      err: source.lastErrorMessage,
      keptKeys: source.memory?.keys.length ?? 0,
    },
    'jwks refresh failed',
  );
  await source.deps.cache.set(source.failureKey, failure, REFRESH_INTERVAL_MS);
}

/** Nothing usable here while another replica holds the lock: wait for what it shares. */
async function waitForOtherReplica(source: Source): Promise<KeySet | undefined> {
  for (let waited = 0; waited <= FETCH_TIMEOUT_MS + 1000; waited += WAIT_POLL_MS) {
    await adoptShared(source);
    if (isUsable(source, source.memory)) return source.memory;
    if (await source.deps.cache.get(source.failureKey)) return undefined;
    await sleep(WAIT_POLL_MS);
  }
  return undefined;
}

/** Static keys from the config (air-gapped clusters): never fetched, never stale. */
export function createStaticKeySource(cluster: ClusterConfig, logger: Logger): KeySource {
  const keys = ingestJwks(cluster.jwks, logger, {
    cluster: cluster.name,
    issuer: cluster.issuer,
    source: 'config',
  });
  if (keys.length === 0)
    logger.error(
      { cluster: cluster.name },
      'static jwks has no usable key: every token of this cluster will be refused',
    );
  return {
    current: () => Promise.resolve(keys),
    afterUnknownKid: () => Promise.resolve(keys),
    status: () => ({
      cluster: cluster.name,
      issuer: cluster.issuer,
      ready: keys.length > 0,
      stale: false,
    }),
    close: () => Promise.resolve(),
  };
}
