import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Authenticates what Tessera writes to a shared cache. Whoever can write to Redis could otherwise
 * plant a JWKS (and so forge any workload identity) or a TokenReview verdict; with a MAC under a
 * key only the replicas know, such an entry is ignored.
 *
 * Wire form: `tc1.<expires at, ms, base 36>.<HMAC-SHA256, base64url>.<value>`. The MAC covers the
 * entry's full cache key (so an entry copied under another key — another issuer's JWKS, another
 * token's review — fails), its expiry (so an old entry cannot be replayed past its lifetime) and
 * its value.
 */
export interface EntrySealer {
  seal(key: string, value: string, expiresAtMs: number): string;
  /** The value, or why the entry is refused. */
  open(key: string, raw: string, nowMs: number): { value: string } | { rejected: RejectReason };
}

/** `format`: not written by this scheme (foreign, truncated); `mac`: altered or moved; `expired`: replayed too late. */
export type RejectReason = 'format' | 'mac' | 'expired';

const VERSION = 'tc1';
const MAC_LENGTH = 43;
const ENTRY = /^tc1\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})\./;

/**
 * A sealer keyed by HKDF-SHA256 from the shared secret, so the secret itself never keys anything
 * and other uses of it (if any) get independent keys.
 *
 * @example const sealer = createEntrySealer(process.env.TESSERA_CACHE_KEY!, 'tessera:');
 */
export function createEntrySealer(secret: string, namespace: string): EntrySealer {
  const key = Buffer.from(
    hkdfSync(
      'sha256',
      Buffer.from(secret, 'utf8'),
      'tessera-sts shared cache',
      `entry-mac v1 ${namespace}`,
      32,
    ),
  );
  const mac = (cacheKey: string, expires: string, value: string): string =>
    createHmac('sha256', key)
      .update(`${VERSION}\0${cacheKey}\0${expires}\0`)
      .update(value)
      .digest('base64url');

  return {
    seal(cacheKey, value, expiresAtMs) {
      const expires = Math.max(0, Math.ceil(expiresAtMs)).toString(36);
      return `${VERSION}.${expires}.${mac(cacheKey, expires, value)}.${value}`;
    },
    open(cacheKey, raw, nowMs) {
      const match = ENTRY.exec(raw);
      if (!match) return { rejected: 'format' };
      const [prefix, expires, tag] = match as unknown as [string, string, string];
      const value = raw.slice(prefix.length);
      const expected = Buffer.from(mac(cacheKey, expires, value), 'utf8');
      if (tag.length !== MAC_LENGTH || !timingSafeEqual(Buffer.from(tag, 'utf8'), expected))
        return { rejected: 'mac' };
      if (parseInt(expires, 36) <= nowMs) return { rejected: 'expired' };
      return { value };
    },
  };
}
