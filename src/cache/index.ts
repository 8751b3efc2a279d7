import type { Config } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { createMemoryCache } from './memory.js';
import { createRedisCache } from './redis.js';
import type { SharedCache } from './types.js';

export type { SharedCache } from './types.js';
export { createMemoryCache } from './memory.js';
export { createRedisCache, describeTarget } from './redis.js';
export type { RedisCacheOptions, RedisTarget } from './redis.js';

/**
 * The cache the config asks for: in memory when `cache.redis` is absent (the embedded
 * default), Redis with an in-memory fallback otherwise.
 *
 * @example const cache = createSharedCache(config.cache, { logger, metrics });
 */
export function createSharedCache(
  cache: Pick<Config['cache'], 'redis'>,
  deps: { logger: Logger; metrics?: Metrics; now?: () => number; timeoutMs?: number },
): SharedCache {
  if (cache.redis === undefined) return createMemoryCache(deps.now ? { now: deps.now } : {});
  return createRedisCache({ redis: cache.redis, ...deps });
}
