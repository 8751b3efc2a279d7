import type { SharedCache } from './types.js';

/**
 * The in-process cache: the embedded default, and the fallback when Redis is unreachable.
 * Expired entries are dropped when read; `sweepEvery` bounds memory for keys never read again.
 */
export function createMemoryCache(
  options: { now?: () => number; maxEntries?: number } = {},
): SharedCache {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const entries = new Map<string, { value: string; expiresAt: number }>();

  const live = (key: string): { value: string; expiresAt: number } | undefined => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const evictIfFull = (): void => {
    if (entries.size < maxEntries) return;
    for (const [key, entry] of entries) if (entry.expiresAt <= now()) entries.delete(key);
    // Still full: drop the oldest insertion (Map keeps insertion order).
    while (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
  };

  // Promise-returning without `async`: nothing here waits, the interface is shared with Redis.
  return {
    kind: 'memory',
    get(key) {
      return Promise.resolve(live(key)?.value);
    },
    set(key, value, ttlMs) {
      evictIfFull();
      entries.delete(key);
      entries.set(key, { value, expiresAt: now() + ttlMs });
      return Promise.resolve();
    },
    delete(key) {
      entries.delete(key);
      return Promise.resolve();
    },
    acquireLock(key, ttlMs, owner = '1') {
      if (live(key)) return Promise.resolve(false);
      evictIfFull();
      entries.set(key, { value: owner, expiresAt: now() + ttlMs });
      return Promise.resolve(true);
    },
    releaseLock(key, owner) {
      if (live(key)?.value !== owner) return Promise.resolve(false);
      entries.delete(key);
      return Promise.resolve(true);
    },
    healthy: () => true,
    close() {
      entries.clear();
      return Promise.resolve();
    },
  };
}
