import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCache, createRedisCache, type SharedCache } from '../../../src/cache/index.js';
import { silentLogger } from '../../../src/observability/index.js';
import {
  requireBinary,
  startRedis,
  TEST_CACHE_SECRET,
  type TestRedis,
} from '../../support/redis.js';

/**
 * One contract, every backend (STYLE.md §5): what callers of SharedCache may rely on,
 * whether the cache lives in this process or in a real redis-server.
 */
interface Backend {
  make(): SharedCache;
  /** Let `ms` pass for TTLs: a frozen clock for memory, real time for Redis. */
  advance(ms: number): Promise<void>;
}

const hasRedis = requireBinary('redis-server');
let redis: TestRedis | undefined;
let namespaceCounter = 0;

beforeAll(async () => {
  if (hasRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const memoryBackend = (): Backend => {
  let clock = 1_700_000_000_000;
  return {
    make: () => createMemoryCache({ now: () => clock }),
    advance: (ms) => {
      clock += ms;
      return Promise.resolve();
    },
  };
};
const redisBackend = (): Backend => ({
  // A fresh key prefix per case keeps cases independent on the one server.
  make: () =>
    createRedisCache({
      redis: redis!.url,
      secret: TEST_CACHE_SECRET,
      logger: silentLogger(),
      keyPrefix: `contract-${++namespaceCounter}:`,
      timeoutMs: 1000,
    }),
  advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

const cases: Array<{ name: string; run: (cache: SharedCache, backend: Backend) => Promise<void> }> =
  [
    {
      name: 'ok/get-missing-is-undefined',
      run: async (cache) => expect(await cache.get('absent')).toBeUndefined(),
    },
    {
      name: 'ok/set-then-get',
      run: async (cache) => {
        await cache.set('k', '{"keys":[]}', 60_000);
        expect(await cache.get('k')).toBe('{"keys":[]}');
      },
    },
    {
      name: 'ok/set-overwrites',
      run: async (cache) => {
        await cache.set('k', 'one', 60_000);
        await cache.set('k', 'two', 60_000);
        expect(await cache.get('k')).toBe('two');
      },
    },
    {
      name: 'ok/delete-removes',
      run: async (cache) => {
        await cache.set('k', 'v', 60_000);
        await cache.delete('k');
        expect(await cache.get('k')).toBeUndefined();
      },
    },
    {
      name: 'ok/delete-missing-leaves-other-keys',
      run: async (cache) => {
        await cache.set('kept', 'v', 60_000);
        await cache.delete('absent');
        expect(await cache.get('absent')).toBeUndefined();
        expect(await cache.get('kept')).toBe('v');
      },
    },
    {
      name: 'ok/entry-expires-after-ttl',
      run: async (cache, backend) => {
        await cache.set('short', 'v', 100);
        await cache.set('long', 'v', 60_000);
        await backend.advance(250);
        expect(await cache.get('short')).toBeUndefined();
        expect(await cache.get('long')).toBe('v');
      },
    },
    {
      name: 'ok/lock-first-caller-wins',
      run: async (cache) => {
        expect(await cache.acquireLock('lock', 10_000)).toBe(true);
        expect(await cache.acquireLock('lock', 10_000)).toBe(false);
      },
    },
    {
      name: 'ok/lock-free-again-after-ttl',
      run: async (cache, backend) => {
        expect(await cache.acquireLock('lock', 100)).toBe(true);
        await backend.advance(250);
        expect(await cache.acquireLock('lock', 100)).toBe(true);
      },
    },
    {
      name: 'ok/lock-free-again-after-delete',
      run: async (cache) => {
        expect(await cache.acquireLock('lock', 10_000)).toBe(true);
        await cache.delete('lock');
        expect(await cache.acquireLock('lock', 10_000)).toBe(true);
      },
    },
    {
      name: 'ok/lock-released-by-its-owner',
      run: async (cache) => {
        expect(await cache.acquireLock('lock', 10_000, 'owner-a')).toBe(true);
        expect(await cache.releaseLock('lock', 'owner-a')).toBe(true);
        expect(await cache.acquireLock('lock', 10_000, 'owner-b')).toBe(true);
      },
    },
    {
      name: 'fail/lock-release-by-another-owner-keeps-it',
      run: async (cache) => {
        expect(await cache.acquireLock('lock', 10_000, 'owner-a')).toBe(true);
        expect(await cache.releaseLock('lock', 'owner-b')).toBe(false);
        expect(await cache.acquireLock('lock', 10_000, 'owner-b')).toBe(false);
        expect(await cache.releaseLock('lock', 'owner-a')).toBe(true);
      },
    },
    {
      name: 'fail/stale-owner-release-after-ttl-keeps-the-new-lock',
      run: async (cache, backend) => {
        expect(await cache.acquireLock('lock', 100, 'slow')).toBe(true);
        await backend.advance(250);
        expect(await cache.acquireLock('lock', 10_000, 'peer')).toBe(true);
        expect(await cache.releaseLock('lock', 'slow')).toBe(false);
        expect(await cache.acquireLock('lock', 10_000, 'third')).toBe(false);
      },
    },
    {
      name: 'fail/release-of-a-missing-lock',
      run: async (cache) => {
        expect(await cache.releaseLock('lock', 'owner-a')).toBe(false);
        expect(await cache.get('lock')).toBeUndefined();
      },
    },
    {
      name: 'fail/release-of-an-ownerless-lock-keeps-it',
      run: async (cache) => {
        expect(await cache.acquireLock('lock', 10_000)).toBe(true);
        expect(await cache.releaseLock('lock', 'owner-a')).toBe(false);
        expect(await cache.acquireLock('lock', 10_000)).toBe(false);
      },
    },
    {
      name: 'ok/concurrent-lock-has-one-winner',
      run: async (cache) => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => cache.acquireLock('contended', 10_000)),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
      },
    },
    {
      name: 'ok/fractional-ttl-is-accepted',
      run: async (cache) => {
        await cache.set('k', 'v', 1500.7);
        expect(await cache.get('k')).toBe('v');
      },
    },
  ];

const backends: Array<{ kind: 'memory' | 'redis'; skip: boolean; backend: () => Backend }> = [
  { kind: 'memory', skip: false, backend: memoryBackend },
  { kind: 'redis', skip: !hasRedis, backend: redisBackend },
];

describe.each(backends)('SharedCache contract: $kind', ({ kind, skip, backend }) => {
  it.skipIf(skip).each(cases)('$name', async ({ run }) => {
    const chosen = backend();
    const cache = chosen.make();
    try {
      expect(cache.kind).toBe(kind);
      await run(cache, chosen);
      // A Redis case that quietly fell back to memory would prove nothing about Redis.
      expect(cache.healthy()).toBe(true);
    } finally {
      await cache.close();
    }
  });
});
