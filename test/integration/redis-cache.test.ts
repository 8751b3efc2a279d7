import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisCache, createSharedCache, type SharedCache } from '../../src/cache/index.js';
import { createLogger, createMetrics, silentLogger } from '../../src/observability/index.js';
import {
  freePort,
  requireBinary,
  startRedis,
  TEST_CACHE_SECRET,
  type TestRedis,
} from '../support/redis.js';

/** Redis is optional and never a single point of failure (issue 4, item 5). */

const hasRedis = requireBinary('redis-server');

function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  return { logger, lines, messages: () => lines.map((line) => String(line.msg)) };
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const counterValue = async (metrics: ReturnType<typeof createMetrics>): Promise<number> =>
  (await metrics.cacheErrors.get()).values.reduce((sum, sample) => sum + sample.value, 0);

describe('createSharedCache', () => {
  it('ok/memory-when-redis-absent', async () => {
    const cache = createSharedCache({}, { logger: silentLogger() });
    expect(cache.kind).toBe('memory');
    await cache.close();
  });
  it('ok/redis-when-configured', async () => {
    const cache = createSharedCache(
      { redis: `redis://127.0.0.1:${await freePort()}` },
      { logger: silentLogger(), env: { TESSERA_CACHE_KEY: TEST_CACHE_SECRET } },
    );
    expect(cache.kind).toBe('redis');
    await cache.close();
  });
});

describe.skipIf(!hasRedis)('Redis cache outages', () => {
  let redis: TestRedis;
  const open: SharedCache[] = [];
  const make = (options: Partial<Parameters<typeof createRedisCache>[0]> = {}) => {
    const cache = createRedisCache({
      redis: redis.url,
      secret: TEST_CACHE_SECRET,
      logger: silentLogger(),
      probeIntervalMs: 100,
      timeoutMs: 500,
      ...options,
    });
    open.push(cache);
    return cache;
  };

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((cache) => cache.close()));
    redis.resume();
    await redis.restart();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('ok/two-instances-share-one-redis', async () => {
    const [first, second] = [make({ keyPrefix: 'share:' }), make({ keyPrefix: 'share:' })];
    await first.set('jwks:prod', '{"keys":[]}', 60_000);
    expect(await second.get('jwks:prod')).toBe('{"keys":[]}');
    expect(await first.acquireLock('refresh:prod', 10_000)).toBe(true);
    expect(await second.acquireLock('refresh:prod', 10_000)).toBe(false);
  });

  it('ok/killed-mid-run-serves-from-memory-and-logs-once', async () => {
    const { logger, lines, messages } = captureLogs();
    const metrics = createMetrics();
    const cache = make({ logger, metrics });
    await cache.set('before', 'shared', 60_000);
    expect(cache.healthy()).toBe(true);

    await redis.kill();
    // Neither a throw nor a rejection, for every operation, many times over.
    for (let round = 0; round < 20; round += 1) {
      await cache.set(`during-${round}`, 'local', 60_000);
      expect(await cache.get(`during-${round}`)).toBe('local');
    }
    expect(await cache.acquireLock('lock', 10_000)).toBe(true);
    expect(await cache.acquireLock('lock', 10_000)).toBe(false);
    await cache.delete('during-0');
    expect(await cache.get('during-0')).toBeUndefined();
    expect(cache.healthy()).toBe(false);

    const outageLines = messages().filter((message) =>
      message.startsWith('redis cache unreachable'),
    );
    expect(outageLines).toHaveLength(1);
    expect(
      lines.find((line) => String(line.msg).startsWith('redis cache unreachable')),
    ).toMatchObject({
      level: 40,
      cache: 'redis',
      target: redis.url,
    });
    expect(await counterValue(metrics)).toBeGreaterThanOrEqual(20);
  });

  it('ok/back-after-restart-shared-again', async () => {
    const { logger, messages } = captureLogs();
    const [first, second] = [make({ keyPrefix: 'back:', logger }), make({ keyPrefix: 'back:' })];
    await redis.kill();
    await first.set('k', 'local-only', 60_000);
    expect(await second.get('k')).toBeUndefined();

    await redis.restart();
    await waitFor(() => first.healthy() && second.healthy(), 'both caches to reach Redis again');
    await first.set('k', 'shared', 60_000);
    expect(await second.get('k')).toBe('shared');
    expect(
      messages().filter((message) => message.startsWith('redis cache reachable again')),
    ).toHaveLength(1);
  });

  it('ok/hung-redis-answers-from-memory-within-budget', async () => {
    await make({ keyPrefix: 'hung:' }).set('k', 'shared', 60_000);
    const cache = make({ keyPrefix: 'hung:', timeoutMs: 100 });
    redis.pause();
    // SIGSTOP keeps the socket open and silent: the per-call budget, not a disconnect, saves us.
    await expect(cache.get('k')).resolves.toBeUndefined();
    await cache.set('k', 'local', 60_000);
    expect(await cache.get('k')).toBe('local');
    expect(cache.healthy()).toBe(false);
    redis.resume();
    await waitFor(
      async () => cache.healthy() && (await cache.get('k')) === 'shared',
      'the cache to read Redis again',
    );
  });

  it('ok/own-event-loop-lag-is-not-an-outage', async () => {
    const cache = make({ keyPrefix: 'lag:', timeoutMs: 100 });
    await cache.set('k', 'shared', 60_000);
    const pending = cache.get('k');
    // Block this process well past the budget: Redis has answered, we just have not read it yet.
    const until = Date.now() + 300;
    while (Date.now() < until) {
      /* busy */
    }
    expect(await pending).toBe('shared');
    expect(cache.healthy()).toBe(true);
  });

  it('ok/unreachable-from-the-start', async () => {
    const cache = createRedisCache({
      redis: `redis://127.0.0.1:${await freePort()}`,
      secret: TEST_CACHE_SECRET,
      logger: silentLogger(),
      probeIntervalMs: 100,
    });
    open.push(cache);
    await cache.set('k', 'v', 60_000);
    expect(await cache.get('k')).toBe('v');
    expect(await cache.acquireLock('lock', 1000)).toBe(true);
    expect(cache.healthy()).toBe(false);
  });

  it('ok/password-never-logged', async () => {
    const { logger, lines } = captureLogs();
    const port = await freePort();
    const cache = createRedisCache({
      redis: `redis://user:s3cret-pass@127.0.0.1:${port}/2`,
      secret: TEST_CACHE_SECRET,
      logger,
    });
    open.push(cache);
    await cache.get('k');
    await waitFor(() => lines.length > 0, 'the outage log line');
    expect(JSON.stringify(lines)).not.toContain('s3cret-pass');
    expect(lines[0]).toMatchObject({ target: `redis://127.0.0.1:${port}/2` });
  });
});
