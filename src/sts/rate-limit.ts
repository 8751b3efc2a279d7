import { slowDown } from '../errors.js';

/**
 * A token bucket per client address: `perSecond` sustained, `burst` at once.
 * Buckets idle long enough to be full again are forgotten, so memory stays bounded.
 */
export function createRateLimiter(options: { perSecond: number; burst: number; now?: () => number; maxClients?: number }) {
  const now = options.now ?? Date.now;
  const maxClients = options.maxClients ?? 50_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refillMs = (options.burst / options.perSecond) * 1000;

  return function take(client: string): void {
    const at = now();
    const bucket = buckets.get(client) ?? { tokens: options.burst, at };
    bucket.tokens = Math.min(options.burst, bucket.tokens + ((at - bucket.at) / 1000) * options.perSecond);
    bucket.at = at;
    if (bucket.tokens < 1) {
      buckets.set(client, bucket);
      throw slowDown((1 - bucket.tokens) / options.perSecond, { detail: { client } });
    }
    bucket.tokens -= 1;
    buckets.delete(client);
    buckets.set(client, bucket);
    if (buckets.size > maxClients) {
      for (const [key, value] of buckets) {
        if (at - value.at < refillMs && buckets.size <= maxClients) break;
        buckets.delete(key);
      }
    }
  };
}
