import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { createMemoryCache } from './memory.js';
import type { SharedCache } from './types.js';

/** `cache.redis` of the config file: a URL, Sentinel, or Cluster nodes. */
export type RedisTarget = NonNullable<Config['cache']['redis']>;

export interface RedisCacheOptions {
  redis: RedisTarget;
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
  const fallback = createMemoryCache(options.now ? { now: options.now } : {});
  const client = connect(options.redis, { timeoutMs, keyPrefix: options.keyPrefix ?? 'tessera:' });

  let up = true;
  let closed = false;
  let probeTimer: NodeJS.Timeout | undefined;
  let probing = false;

  const markDown = (reason: string): void => {
    if (!up || closed) return;
    up = false;
    logger.warn({ cache: 'redis', target, reason }, 'redis cache unreachable: serving from memory until it answers');
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
        async () => (await client.get(key)) ?? undefined,
        () => fallback.get(key),
      ),
    set: (key, value, ttlMs) =>
      call(
        async () => void (await client.set(key, value, 'PX', wholeMs(ttlMs))),
        () => fallback.set(key, value, ttlMs),
      ),
    async delete(key) {
      await fallback.delete(key);
      await call(
        async () => void (await client.del(key)),
        async () => undefined,
      );
    },
    acquireLock: (key, ttlMs, owner = '1') =>
      call(
        async () => (await client.set(key, owner, 'PX', wholeMs(ttlMs), 'NX')) === 'OK',
        () => fallback.acquireLock(key, ttlMs, owner),
      ),
    async releaseLock(key, owner) {
      // A lock taken during an outage lives in memory; one taken before it, in Redis.
      const local = await fallback.releaseLock(key, owner);
      const shared = await call(
        async () => (await client.eval(RELEASE_IF_OWNER, 1, key, owner)) === 1,
        async () => false,
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

function connect(redis: RedisTarget, settings: { timeoutMs: number; keyPrefix: string }): Redis | Cluster {
  const common: RedisOptions = {
    keyPrefix: settings.keyPrefix,
    // Only a backstop: the per-call budget is enforced by withTimeout, which tolerates our own
    // event-loop lag; ioredis' timer would not.
    commandTimeout: Math.max(settings.timeoutMs * 5, 500),
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    // Reconnect forever, at most every 2 s: the cache is used from memory meanwhile.
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
  };
  if (typeof redis === 'string') return new Redis(redis, common);
  if ('sentinels' in redis) {
    return new Redis({ ...common, sentinels: redis.sentinels, name: redis.name, password: redis.password, sentinelPassword: redis.password });
  }
  return new Cluster(redis.cluster, {
    keyPrefix: settings.keyPrefix,
    redisOptions: { ...common, keyPrefix: undefined },
    clusterRetryStrategy: (times: number) => Math.min(times * 200, 2000),
  });
}

/** Where the cache points, for logs: never the password. */
export function describeTarget(redis: RedisTarget): string {
  if (typeof redis === 'string') {
    if (!URL.canParse(redis)) return 'redis (unparseable URL)';
    const url = new URL(redis);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  }
  if ('sentinels' in redis) return `sentinel ${redis.name} via ${redis.sentinels.map((node) => `${node.host}:${node.port}`).join(',')}`;
  return `cluster ${redis.cluster.map((node) => `${node.host}:${node.port}`).join(',')}`;
}

/** Compare-and-delete in one step: a GET then DEL could delete a lock a peer took in between. */
const RELEASE_IF_OWNER = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

const wholeMs = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs));

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    // When the timer fires, an answer may already sit in the socket, unread because this process
    // was busy: let one round of I/O run first, so our own event-loop lag is not taken for a
    // Redis outage (which would split the replicas' shared locks into per-process ones).
    timer = setTimeout(() => setImmediate(() => reject(new Error(`no answer within ${ms} ms`))), ms);
  });
  // A late rejection after the deadline must not become an unhandled rejection.
  promise.catch(() => undefined);
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
