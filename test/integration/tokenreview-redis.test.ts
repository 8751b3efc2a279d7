import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRedisCache, type SharedCache } from '../../src/cache/index.js';
import { silentLogger } from '../../src/observability/index.js';
import { createTokenReviewVerifier } from '../../src/verifiers/tokenreview.js';
import {
  issueReviewToken,
  REVIEW_AUDIENCE as AUDIENCE,
  reviewCluster,
  useKubeApiServer,
  withRawTokens,
} from '../support/tokenreview.js';
import { requireBinary, startRedis, TEST_CACHE_SECRET, type TestRedis } from '../support/redis.js';

/** TokenReview results shared across broker replicas through one real Redis. */

const hasRedis = requireBinary('redis-server');

describe.skipIf(!hasRedis)('TokenReview verifier with a Redis cache', () => {
  let redis: TestRedis;
  const kube = useKubeApiServer();
  const caches: SharedCache[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    await redis?.stop();
  });

  const replica = (prefix: string) => {
    const cache = createRedisCache({
      redis: redis.url,
      secret: TEST_CACHE_SECRET,
      logger: silentLogger(),
      keyPrefix: prefix,
      timeoutMs: 1000,
      probeIntervalMs: 100,
    });
    caches.push(cache);
    const cluster = reviewCluster(kube());
    return {
      cache,
      verifier: withRawTokens(
        createTokenReviewVerifier(cluster, {
          cache,
          logger: silentLogger(),
          audiences: [AUDIENCE],
        }),
      ),
    };
  };
  const issue = () => issueReviewToken(kube());
  const reviewsOf = (token: string) =>
    kube()
      .reviews()
      .filter((review) => review.token === token).length;

  it('ok/second-replica-makes-zero-reviews-and-redis-holds-no-token', async () => {
    const [first, second] = [replica('share:'), replica('share:')];
    const token = await issue();
    const identity = await first.verifier.verify(token);
    expect(await second.verifier.verify(token)).toEqual(identity);
    expect(reviewsOf(token)).toBe(1);

    const raw = new Redis(redis.url);
    try {
      const keys = await raw.keys('share:tokenreview:*');
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatch(/^share:tokenreview:prod:[0-9a-f]{64}$/);
      expect(await raw.get(keys[0]!)).not.toContain(token.split('.')[2]);
      const ttl = await raw.pttl(keys[0]!);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    } finally {
      raw.disconnect();
    }
  });

  it('ok/redis-killed-mid-run-verify-keeps-working-then-shared-again', async () => {
    const [first, second] = [replica('outage:'), replica('outage:')];
    await redis.kill();
    const token = await issue();
    // Each replica falls back to its own memory: both verify (one review each), nothing throws.
    expect((await first.verifier.verify(token)).namespace).toBe('production');
    expect((await second.verifier.verify(token)).namespace).toBe('production');
    expect(reviewsOf(token)).toBe(2);

    await redis.restart();
    const deadline = Date.now() + 15_000;
    while (!(first.cache.healthy() && second.cache.healthy())) {
      if (Date.now() > deadline) throw new Error('caches did not reach Redis again');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const fresh = await issue();
    await first.verifier.verify(fresh);
    await second.verifier.verify(fresh);
    expect(reviewsOf(fresh)).toBe(1);
  });
});
