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
  /**
   * `SET key owner NX PX ttlMs`: true when this caller holds the lock now. Pass a random `owner`
   * to release it later with {@link releaseLock}; without one the lock only expires or is deleted.
   */
  acquireLock(key: string, ttlMs: number, owner?: string): Promise<boolean>;
  /**
   * Deletes the lock only while `owner` still holds it (compare-and-delete), so a caller whose
   * work outlived the TTL never frees a lock a peer has taken since. True when it was released.
   */
  releaseLock(key: string, owner: string): Promise<boolean>;
  /** Whether the shared backend (not the memory fallback) answered the last call. */
  healthy(): boolean;
  close(): Promise<void>;
}
