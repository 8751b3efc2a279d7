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
  const timeoutMs = options.timeoutMs ?? 100;
  const probeIntervalMs = options.probeIntervalMs ?? 1000;
  const { logger, metrics } = options;
  const target = describeTarget(options.redis);
  const now = options.now ?? Date.now;
  const fallback = createMemoryCache(options.now ? { now: options.now } : {});
  const keyPrefix = options.keyPrefix ?? 'tessera:';
  const client = connect(options.redis, {
    timeoutMs,
    keyPrefix,
    password: options.password,
    ca: options.ca,
  });
  const sealer = createEntrySealer(options.secret, keyPrefix);
  /** An entry that fails authentication is absent to every caller: counted and logged, never its content. */
  const unseal = (key: string, raw: string | null): string | undefined => {
    if (raw === null) return undefined;
    const opened = sealer.open(keyPrefix + key, raw, now());
    if ('value' in opened) return opened.value;
    metrics?.cacheRejected.inc({ reason: opened.rejected });
    logger.warn(
      { cache: 'redis', target, key, reason: opened.rejected, length: raw.length },
      'shared cache entry failed authentication: ignored',
    );
    return undefined;
  };
  // Lock values are only compared, never read for meaning: a fixed expiry makes the sealed owner
  // deterministic, so the compare-and-delete script can match it.
  const lockValue = (key: string, owner: string): string => sealer.seal(keyPrefix + key, owner, 0);

  let up = true;
  let closed = false;
  let probeTimer: NodeJS.Timeout | undefined;
  let probing = false;

  const markDown = (reason: string): void => {
    if (!up || closed) return;
    up = false;
    logger.warn(
      { cache: 'redis', target, reason },
      'redis cache unreachable: serving from memory until it answers',
    );
    probeTimer ??= setInterval(() => void probe(), probeIntervalMs);
    probeTimer.unref();
  };
  const markUp = async (): Promise<void> => {
    if (up || closed) return;
    up = true;
    if (probeTimer) clearInterval(probeTimer);
    probeTimer = undefined;
    // What was written to memory during the outage may since have been replaced or deleted in
    // Redis by another replica: drop it rather than serve it at the next outage.
    await fallback.close();
    logger.info({ cache: 'redis', target }, 'redis cache reachable again: shared cache restored');
  };
  const probe = async (): Promise<void> => {
    if (up || probing || closed) return;
    probing = true;
    try {
      await withTimeout(client.ping(), timeoutMs);
      await markUp();
    } catch {
      // still down: the next tick tries again
    } finally {
      probing = false;
    }
  };

  client.on('error', () => {
    // Reported through markDown (once per outage); ioredis would otherwise print each retry.
  });
  client.on('close', () => markDown('connection closed'));
  client.on('ready', () => void probe());

  const call = async <T>(viaRedis: () => Promise<T>, viaMemory: () => Promise<T>): Promise<T> => {
    if (up && !closed) {
      try {
        return await withTimeout(viaRedis(), timeoutMs);
      } catch (error) {
        markDown(error instanceof Error ? error.message : String(error));
      }
    }
    metrics?.cacheErrors.inc({ backend: 'redis' });
    return viaMemory();
  };

  return {
    kind: 'redis',
    get: (key) =>
      call(
        async () => unseal(key, await client.get(key)),
        () => fallback.get(key),
      ),
    set: (key, value, ttlMs) =>
      call(
        async () =>
          void (await client.set(
            key,
            sealer.seal(keyPrefix + key, value, now() + wholeMs(ttlMs)),
            'PX',
            wholeMs(ttlMs),
          )),
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
          (await client.set(key, lockValue(key, owner), 'PX', wholeMs(ttlMs), 'NX')) === 'OK',
        () => fallback.acquireLock(key, ttlMs, owner),
      ),
    async releaseLock(key, owner) {
      // A lock taken during an outage lives in memory; one taken before it, in Redis.
      const local = await fallback.releaseLock(key, owner);
      const shared = await call(
        async () => (await client.eval(RELEASE_IF_OWNER, 1, key, lockValue(key, owner))) === 1,
        () => Promise.resolve(false),
      );
      return local || shared;
    },
    healthy: () => up && !closed,
    async close() {
      if (closed) return;
      closed = true;
      if (probeTimer) clearInterval(probeTimer);
      await withTimeout(client.quit(), 1000).catch(() => client.disconnect());
      await fallback.close();
    },
  };
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
