import { readFileSync } from 'node:fs';
import { ConfigError, type Config } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { createMemoryCache } from './memory.js';
import { createRedisCache, type RedisTarget } from './redis.js';
import type { SharedCache } from './types.js';

type CacheConfig = Config['cache'];

/** The shared backend the config names, if any. */
function sharedTarget(
  cache: Pick<CacheConfig, 'redis' | 'sentinel' | 'cluster'>,
): RedisTarget | undefined {
  if (cache.redis !== undefined) return cache.redis;
  if (cache.sentinel !== undefined) return { sentinel: cache.sentinel };
  if (cache.cluster !== undefined) return { cluster: cache.cluster };
  return undefined;
}

/**
 * The secret the replicas share, from the variable `cache.keyEnv` names. A shared cache without it
 * is a start-up error: entries nobody can authenticate would let whoever writes to Redis forge
 * identities.
 *
 * @example const secret = cacheSecret(config.cache, process.env);
 */
function cacheSecret(cache: Pick<CacheConfig, 'keyEnv'>, env: NodeJS.ProcessEnv): string {
  const secret = env[cache.keyEnv];
  if (secret === undefined || secret.trim() === '') {
    throw new ConfigError(
      `cache: environment variable ${cache.keyEnv} is not set: a shared cache needs a secret the replicas share (cache.keyEnv)`,
      [`cache.keyEnv: environment variable ${cache.keyEnv} is not set`],
    );
  }
  return secret;
}

/**
 * The cache the config asks for: in memory when no shared backend is set (the embedded default),
 * Redis (URL, Sentinel or Cluster) with an in-memory fallback otherwise.
 *
 * @example const cache = createSharedCache(config.cache, { logger, metrics, env: process.env });
 */
export function createSharedCache(
  cache: Partial<CacheConfig>,
  deps: {
    logger: Logger;
    metrics?: Metrics;
    now?: () => number;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
  },
): SharedCache {
  const target = sharedTarget(cache);
  if (target === undefined) return createMemoryCache(deps.now ? { now: deps.now } : {});
  const env = deps.env ?? process.env;
  const secret = cacheSecret({ keyEnv: cache.keyEnv ?? 'TESSERA_CACHE_KEY' }, env);
  if (secret.length < 32)
    deps.logger.warn(
      { keyEnv: cache.keyEnv ?? 'TESSERA_CACHE_KEY', length: secret.length },
      'cache secret is shorter than 32 characters',
    );
  const password = cache.passwordEnv === undefined ? undefined : env[cache.passwordEnv];
  if (cache.passwordEnv !== undefined && !password) {
    throw new ConfigError(
      `cache: environment variable ${cache.passwordEnv} is not set (cache.passwordEnv)`,
      [`cache.passwordEnv: environment variable ${cache.passwordEnv} is not set`],
    );
  }
  let ca: string | undefined;
  if (cache.caFile !== undefined) {
    try {
      ca = readFileSync(cache.caFile, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `cache.caFile: cannot read ${cache.caFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        [`cache.caFile: cannot read ${cache.caFile}`],
      );
    }
  }
  const { logger, metrics, now, timeoutMs } = deps;
  return createRedisCache({ redis: target, secret, password, ca, logger, metrics, now, timeoutMs });
}
