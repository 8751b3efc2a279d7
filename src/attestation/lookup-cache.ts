/**
 * A bounded map of values loaded on demand: one load per key at a time (concurrent callers share
 * it), a value reused while younger than `ttlMs`, the oldest entry dropped beyond `max`. A failed
 * load is not remembered: the next caller tries again.
 */
export interface LookupCache<T> {
  get(key: string, load: () => Promise<T>): Promise<T>;
  /** A cached value regardless of age (`undefined` when none), with when it was loaded. */
  peek(key: string): { value: T; at: number } | undefined;
  set(key: string, value: T): void;
  size(): number;
}

export function createLookupCache<T>(options: {
  ttlMs: number | ((value: T) => number);
  max: number;
  now: () => number;
}): LookupCache<T> {
  const ttl =
    typeof options.ttlMs === 'number'
      ? ((() => options.ttlMs) as (value: T) => number)
      : options.ttlMs;
  const entries = new Map<string, { value: T; at: number }>();
  const inflight = new Map<string, Promise<T>>();
  const store = (key: string, value: T) => {
    entries.delete(key);
    entries.set(key, { value, at: options.now() });
    if (entries.size > options.max) entries.delete(entries.keys().next().value as string);
  };
  return {
    get(key, load) {
      const entry = entries.get(key);
      if (entry && options.now() - entry.at < ttl(entry.value)) return Promise.resolve(entry.value);
      const running = inflight.get(key);
      if (running) return running;
      const promise = load().then(
        (value) => {
          store(key, value);
          return value;
        },
        (error: unknown) => {
          throw error;
        },
      );
      inflight.set(key, promise);
      void promise.catch(() => undefined).finally(() => inflight.delete(key));
      return promise;
    },
    peek: (key) => entries.get(key),
    set: store,
    size: () => entries.size,
  };
}
