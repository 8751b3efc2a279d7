import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger, Metrics } from '../observability/index.js';
import { createMemoryCache } from './memory.js';
import { createEntrySealer } from './seal.js';
import type { SharedCache } from './types.js';

/** Where the shared cache lives: a `redis://`/`rediss://` URL, a Sentinel set or Cluster nodes (`"host:port"`). */
export type RedisTarget =
  string | { sentinel: { sentinels: string[]; name: string } } | { cluster: string[] };

export interface RedisCacheOptions {
  redis: RedisTarget;
  /** The secret the replicas share; every entry is authenticated with a key derived from it. */
  secret: string;
  /** Password of the Redis nodes (a URL's own password wins). */
  password?: string;
  /** CA certificates (PEM) trusted for a `rediss://` server. */
  ca?: string;
  logger: Logger;
  metrics?: Metrics;
  /** Budget per Redis call; past it the call is served from memory. */
  timeoutMs?: number;
  /** How often an unreachable Redis is probed (PING) to go back to it. */
  probeIntervalMs?: number;
  /** Prepended to every key, so one Redis can serve other tenants too. */
  keyPrefix?: string;
  /** Clock of the in-memory fallback. */
  now?: () => number;
}

/**
 * The shared cache on Redis, never a single point of failure: a call that fails or takes longer
 * than `timeoutMs` (100 ms) is answered from an in-process cache instead, and so is every call
 * while Redis stays unreachable. The outage is logged once, each fallback counts in
 * `tessera_cache_backend_errors_total`, and a background PING goes back to Redis when it answers.
 *
 * @example const cache = createRedisCache({ redis: 'redis://127.0.0.1:6379', logger });
 */
export function createRedisCache(options: RedisCacheOptions): SharedCache {
  const keyPrefix = options.keyPrefix ?? 'tessera:';
  const link = openLink(options, keyPrefix);
  const entries = createSealedEntries(options, keyPrefix, link.target);
  const { client, fallback } = link;
  const call = <T>(viaRedis: () => Promise<T>, viaMemory: () => Promise<T>): Promise<T> =>
    callOrFallBack(link, viaRedis, viaMemory);

  return {
    kind: 'redis',
    get: (key) =>
      call(
        async () => entries.unseal(key, await client.get(key)),
        () => fallback.get(key),
      ),
    set: (key, value, ttlMs) =>
      call(
        async () =>
          void (await client.set(key, entries.seal(key, value, ttlMs), 'PX', wholeMs(ttlMs))),
        () => fallback.set(key, value, ttlMs),
      ),
    async delete(key) {
      await fallback.delete(key);
      await call(
        async () => void (await client.del(key)),
        () => Promise.resolve(),
      );
    },
    acquireLock: (key, ttlMs, owner = '1') =>
      call(
        async () =>
          (await client.set(key, entries.lockValue(key, owner), 'PX', wholeMs(ttlMs), 'NX')) ===
          'OK',
        () => fallback.acquireLock(key, ttlMs, owner),
      ),
    async releaseLock(key, owner) {
      // A lock taken during an outage lives in memory; one taken before it, in Redis.
      const local = await fallback.releaseLock(key, owner);
      const shared = await call(
        async () =>
          (await client.eval(RELEASE_IF_OWNER, 1, key, entries.lockValue(key, owner))) === 1,
        () => Promise.resolve(false),
      );
      return local || shared;
    },
    healthy: () => link.up && !link.closed,
    close: () => closeLink(link),
  };
}

/** What goes to Redis is sealed under its full (prefixed) key, and checked when it comes back. */
interface SealedEntries {
  seal(key: string, value: string, ttlMs: number): string;
  unseal(key: string, raw: string | null): string | undefined;
  lockValue(key: string, owner: string): string;
}

function createSealedEntries(
  options: RedisCacheOptions,
  keyPrefix: string,
  target: string,
): SealedEntries {
  const { logger, metrics } = options;
  const now = options.now ?? Date.now;
  const sealer = createEntrySealer(options.secret, keyPrefix);
  return {
    seal: (key, value, ttlMs) => sealer.seal(keyPrefix + key, value, now() + wholeMs(ttlMs)),
    /** An entry that fails authentication is absent to every caller: counted and logged, never its content. */
    unseal(key, raw) {
      if (raw === null) return undefined;
      const opened = sealer.open(keyPrefix + key, raw, now());
      if ('value' in opened) return opened.value;
      metrics?.cacheRejected.inc({ reason: opened.rejected });
      logger.warn(
        { cache: 'redis', target, key, reason: opened.rejected, length: raw.length },
        'shared cache entry failed authentication: ignored',
      );
      return undefined;
    },
    // Lock values are only compared, never read for meaning: a fixed expiry makes the sealed owner
    // deterministic, so the compare-and-delete script can match it.
    lockValue: (key, owner) => sealer.seal(keyPrefix + key, owner, 0),
  };
}

/**
 * The Redis connection, the memory cache that stands in for it, and whether Redis answers now.
 * Plain data: only the link functions below change `up`, `closed`, `probing` and `probeTimer`.
 */
interface RedisLink {
  readonly client: Redis | Cluster;
  readonly fallback: SharedCache;
  /** Where the cache points, for logs. */
  readonly target: string;
  readonly logger: Logger;
  readonly metrics: Metrics | undefined;
  readonly timeoutMs: number;
  readonly probeIntervalMs: number;
  up: boolean;
  closed: boolean;
  probing: boolean;
  probeTimer: NodeJS.Timeout | undefined;
}

function openLink(options: RedisCacheOptions, keyPrefix: string): RedisLink {
  const timeoutMs = options.timeoutMs ?? 100;
  const target = describeTarget(options.redis);
  const fallback = createMemoryCache(options.now ? { now: options.now } : {});
  const client = connect(options.redis, {
    timeoutMs,
    keyPrefix,
    password: options.password,
    ca: options.ca,
  });
  const link: RedisLink = {
    client,
    fallback,
    target,
    logger: options.logger,
    metrics: options.metrics,
    timeoutMs,
    probeIntervalMs: options.probeIntervalMs ?? 1000,
    up: true,
    closed: false,
    probing: false,
    probeTimer: undefined,
  };
  client.on('error', () => {
    // Reported through markDown (once per outage); ioredis would otherwise print each retry.
  });
  client.on('close', () => markDown(link, 'connection closed'));
  client.on('ready', () => void probe(link));
  return link;
}

/** Redis while it answers within the budget; memory otherwise, counted as a backend error. */
async function callOrFallBack<T>(
  link: RedisLink,
  viaRedis: () => Promise<T>,
  viaMemory: () => Promise<T>,
): Promise<T> {
  if (link.up && !link.closed) {
    try {
      return await withTimeout(viaRedis(), link.timeoutMs);
    } catch (error) {
      markDown(link, error instanceof Error ? error.message : String(error));
    }
  }
  link.metrics?.cacheErrors.inc({ backend: 'redis' });
  return viaMemory();
}

function markDown(link: RedisLink, reason: string): void {
  if (!link.up || link.closed) return;
  link.up = false;
  link.logger.warn(
    { cache: 'redis', target: link.target, reason },
    'redis cache unreachable: serving from memory until it answers',
  );
  link.probeTimer ??= setInterval(() => void probe(link), link.probeIntervalMs);
  link.probeTimer.unref();
}

async function markUp(link: RedisLink): Promise<void> {
  if (link.up || link.closed) return;
  link.up = true;
  if (link.probeTimer) clearInterval(link.probeTimer);
  link.probeTimer = undefined;
  // What was written to memory during the outage may since have been replaced or deleted in
  // Redis by another replica: drop it rather than serve it at the next outage.
  await link.fallback.close();
  link.logger.info(
    { cache: 'redis', target: link.target },
    'redis cache reachable again: shared cache restored',
  );
}

async function probe(link: RedisLink): Promise<void> {
  if (link.up || link.probing || link.closed) return;
  link.probing = true;
  try {
    await withTimeout(link.client.ping(), link.timeoutMs);
    await markUp(link);
  } catch {
    // still down: the next tick tries again
  } finally {
    link.probing = false;
  }
}

async function closeLink(link: RedisLink): Promise<void> {
  if (link.closed) return;
  link.closed = true;
  if (link.probeTimer) clearInterval(link.probeTimer);
  await withTimeout(link.client.quit(), 1000).catch(() => link.client.disconnect());
  await link.fallback.close();
}

function connect(
  redis: RedisTarget,
  settings: { timeoutMs: number; keyPrefix: string; password?: string; ca?: string },
): Redis | Cluster {
  const common: RedisOptions = {
    keyPrefix: settings.keyPrefix,
    // Only a backstop: the per-call budget is enforced by withTimeout, which tolerates our own
    // event-loop lag; ioredis' timer would not.
    commandTimeout: Math.max(settings.timeoutMs * 5, 500),
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    // Reconnect forever, at most every 2 s: the cache is used from memory meanwhile.
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
    ...(settings.password !== undefined && { password: settings.password }),
  };
  if (typeof redis === 'string') {
    // ioredis turns TLS on for rediss:// by itself; the CA is only added to it.
    const tls =
      settings.ca !== undefined && /^rediss:/i.test(redis) ? { tls: { ca: settings.ca } } : {};
    return new Redis(redis, { ...common, ...tls });
  }
  if ('sentinel' in redis) {
    return new Redis({
      ...common,
      sentinels: redis.sentinel.sentinels.map(hostPort),
      name: redis.sentinel.name,
      // A Sentinel's answers are bounded like the data nodes': a dead sentinel is skipped, not waited on.
      sentinelRetryStrategy: (times: number) => Math.min(times * 200, 2000),
      sentinelCommandTimeout: 1000,
    });
  }
  return new Cluster(redis.cluster.map(hostPort), {
    keyPrefix: settings.keyPrefix,
    redisOptions: { ...common, keyPrefix: undefined },
    clusterRetryStrategy: (times: number) => Math.min(times * 200, 2000),
    slotsRefreshTimeout: 2000,
  });
}

/** `"host:port"` (IPv6 hosts bracketed) as ioredis wants it. */
function hostPort(node: string): { host: string; port: number } {
  const at = node.lastIndexOf(':');
  return { host: node.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(node.slice(at + 1)) };
}

/** Where the cache points, for logs: never the password. */
function describeTarget(redis: RedisTarget): string {
  if (typeof redis === 'string') {
    if (!URL.canParse(redis)) return 'redis (unparseable URL)';
    const url = new URL(redis);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  }
  if ('sentinel' in redis)
    return `sentinel ${redis.sentinel.name} via ${redis.sentinel.sentinels.join(',')}`;
  return `cluster ${redis.cluster.join(',')}`;
}

/** Compare-and-delete in one step: a GET then DEL could delete a lock a peer took in between. */
const RELEASE_IF_OWNER =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

const wholeMs = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs));

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    // When the timer fires, an answer may already sit in the socket, unread because this process
    // was busy: let one round of I/O run first, so our own event-loop lag is not taken for a
    // Redis outage (which would split the replicas' shared locks into per-process ones).
    timer = setTimeout(
      () => setImmediate(() => reject(new Error(`no answer within ${ms} ms`))),
      ms,
    );
  });
  // A late rejection after the deadline must not become an unhandled rejection.
  promise.catch(() => undefined);
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
