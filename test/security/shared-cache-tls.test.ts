import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSharedCache } from '../../src/cache/index.js';
import { createLogger } from '../../src/observability/index.js';
import { captureLogs } from '../support/app.js';
import {
  redisHasTls,
  requireBinary,
  startRedis,
  TEST_CACHE_SECRET,
  type TestRedis,
} from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * The shared cache over TLS (`rediss://`, the server checked against `cache.caFile`) with the
 * password taken from the environment: nothing crosses the network in the clear and the password
 * never sits in the config file or a log line.
 */
const hasRedis = requireBinary('redis-server');
const hasTls = hasRedis && redisHasTls();
if (hasRedis && !hasTls) {
  if (process.env.CI === 'true')
    throw new Error('redis-server is built without TLS: required when CI=true');
  console.warn('SKIPPED: redis-server is built without TLS');
}
const PASSWORD = 'tls-redis-password-9f2c';

describe.skipIf(!hasTls)('rediss:// with caFile and passwordEnv', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ tls: true, password: PASSWORD });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const env = { TESSERA_CACHE_KEY: TEST_CACHE_SECRET, REDIS_PASSWORD: PASSWORD };

  it('ok/entries-written-over-tls-authenticated-and-shared', async () => {
    const { capture, logger } = captureLogs();
    const options = {
      redis: redis.url,
      caFile: redis.caFile,
      passwordEnv: 'REDIS_PASSWORD',
      keyEnv: 'TESSERA_CACHE_KEY',
    };
    const [first, second] = [
      createSharedCache(options, { logger, env, timeoutMs: 2000 }),
      createSharedCache(options, { logger, env, timeoutMs: 2000 }),
    ];
    try {
      await first.set('k', 'over tls', 60_000);
      expect(await second.get('k')).toBe('over tls');
      expect(first.healthy() && second.healthy()).toBe(true);
      const raw = new Redis(redis.url, {
        password: PASSWORD,
        tls: { ca: readFileSync(redis.caFile as string, 'utf8') },
        lazyConnect: true,
      });
      await raw.connect();
      try {
        expect(await raw.get('tessera:k')).toMatch(/^tc1\.[0-9a-z]+\.[A-Za-z0-9_-]{43}\.over tls$/);
      } finally {
        raw.disconnect();
      }
      expect(capture.text()).not.toContain(PASSWORD);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('fail/server-certificate-not-from-the-ca-is-refused', async () => {
    const { capture, logger } = captureLogs();
    // No caFile: the throwaway CA is not trusted, so the handshake fails and nothing is sent.
    const cache = createSharedCache(
      { redis: redis.url, passwordEnv: 'REDIS_PASSWORD', keyEnv: 'TESSERA_CACHE_KEY' },
      { logger, env, timeoutMs: 200 },
    );
    try {
      await cache.set('k', 'v', 60_000);
      await waitFor(() => !cache.healthy(), 'the cache to report Redis unreachable');
      expect(await cache.get('k')).toBe('v'); // from the in-memory fallback
      expect(capture.text()).not.toContain(PASSWORD);
    } finally {
      await cache.close();
    }
  });

  it('fail/password-variable-unset-refuses-to-start', () => {
    expect(() =>
      createSharedCache(
        {
          redis: redis.url,
          caFile: redis.caFile,
          passwordEnv: 'REDIS_PASSWORD',
          keyEnv: 'TESSERA_CACHE_KEY',
        },
        {
          logger: createLogger({ level: 'silent' }),
          env: { TESSERA_CACHE_KEY: TEST_CACHE_SECRET },
        },
      ),
    ).toThrow(/REDIS_PASSWORD is not set/);
  });
});
