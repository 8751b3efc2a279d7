/**
 * A small shared key/value store with TTLs and locks: in memory by default, Redis when
 * `cache.redis` is set. Used for JWKS documents, TokenReview results and rotation locks.
 * Implementations never throw for a backend outage: the Redis one degrades to memory.
 */
export interface SharedCache {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** `SET key NX PX ttlMs`: true when this caller holds the lock now. */
  acquireLock(key: string, ttlMs: number): Promise<boolean>;
  /** Whether the shared backend (not the memory fallback) answered the last call. */
  healthy(): boolean;
  close(): Promise<void>;
}
