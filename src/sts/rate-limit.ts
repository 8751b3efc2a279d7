import { slowDown } from '../errors.js';

/**
 * A token bucket per client address: `perSecond` sustained, `burst` at once. Memory is bounded
 * by forgetting only buckets that have refilled (an idle client loses nothing); when every slot
 * holds a client still being limited, unknown clients are limited too rather than letting
 * address spraying evict the ones being throttled.
 */
export function createRateLimiter(options: {
  perSecond: number;
  burst: number;
  now?: () => number;
  maxClients?: number;
}) {
  const now = options.now ?? Date.now;
  const maxClients = options.maxClients ?? 50_000;
  const buckets = new Map<string, { tokens: number; at: number }>();

  const refill = (bucket: { tokens: number; at: number }, at: number): void => {
    bucket.tokens = Math.min(
      options.burst,
      bucket.tokens + ((at - bucket.at) / 1000) * options.perSecond,
    );
    bucket.at = at;
  };
  let lastSweepAt = Number.NEGATIVE_INFINITY;
  // A sweep walks every bucket: at most once a second, so a full table under address spraying
  // costs one walk per second, not one per request.
  const forgetRefilled = (at: number): void => {
    if (at - lastSweepAt < 1000) return;
    lastSweepAt = at;
    for (const [client, bucket] of buckets) {
      refill(bucket, at);
      if (bucket.tokens >= options.burst) buckets.delete(client);
    }
  };

  return function take(client: string): void {
    const at = now();
    let bucket = buckets.get(client);
    if (!bucket) {
      if (buckets.size >= maxClients) forgetRefilled(at);
      if (buckets.size >= maxClients)
        throw slowDown(1 / options.perSecond, {
          reason: 'rate_limit_table_full',
          detail: { client },
        });
      bucket = { tokens: options.burst, at };
      buckets.set(client, bucket);
    }
    refill(bucket, at);
    if (bucket.tokens < 1)
      throw slowDown((1 - bucket.tokens) / options.perSecond, {
        reason: 'rate_limited',
        detail: { client },
      });
    bucket.tokens -= 1;
  };
}

/** `rateLimit` of the config. */
export interface RateLimitSettings {
  enabled: boolean;
  perSecond: number;
  burst: number;
  perIdentity: { perSecond: number; burst: number };
}

/** The bucket a verified workload draws from: every pod of one service account shares it. */
export const identityBucket = (identity: {
  cluster: string;
  namespace?: string;
  serviceAccount?: { name: string };
  sub: string;
}): string =>
  identity.namespace !== undefined && identity.serviceAccount !== undefined
    ? `${identity.cluster}/${identity.namespace}/${identity.serviceAccount.name}`
    : `${identity.cluster}/sub:${identity.sub}`;
