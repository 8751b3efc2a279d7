import { X509Certificate } from 'node:crypto';
import type { JWK } from 'jose';
import { toPem } from './der.js';

/**
 * The trust bundle of GET /v1/trust-bundle: the root certificates as PEM, and the SPIFFE
 * bundle (SPIFFE Trust Domain and Bundle spec §4): a JWKS where each X.509 authority is a
 * key with `use: x509-svid` and exactly one certificate in `x5c`, and each JWT signing key
 * has `use: jwt-svid`.
 */
export interface SpiffeBundle {
  keys: JWK[];
  /** Seconds a consumer should wait before fetching the bundle again. */
  spiffe_refresh_hint: number;
  /** Grows whenever the X.509 authorities change (the newest root's notBefore). */
  spiffe_sequence?: number;
}

export interface TrustBundle {
  /** Root certificates, PEM, concatenated: a `CAfile` for openssl/curl. */
  pem: string;
  spiffe: SpiffeBundle;
}

const SPIFFE_REFRESH_HINT_SECONDS = 300;

function x509SvidKey(root: Uint8Array): JWK {
  const certificate = new X509Certificate(root);
  const { kty, crv, x, y, n, e } = certificate.publicKey.export({ format: 'jwk' });
  const publicKey: JWK = kty === 'EC' ? { kty, crv, x, y } : { kty, n, e };
  return { ...publicKey, use: 'x509-svid', x5c: [Buffer.from(root).toString('base64')] };
}

export function buildTrustBundle(roots: Uint8Array[], jwtKeys: JWK[] = []): TrustBundle {
  const sequences = roots.map((root) =>
    Math.floor(new Date(new X509Certificate(root).validFrom).getTime() / 1000),
  );
  const spiffe: SpiffeBundle = {
    keys: [...roots.map(x509SvidKey), ...jwtKeys.map((key) => ({ ...key, use: 'jwt-svid' }))],
    spiffe_refresh_hint: SPIFFE_REFRESH_HINT_SECONDS,
    ...(sequences.length > 0 && { spiffe_sequence: Math.max(...sequences) }),
  };
  return { pem: roots.map((root) => toPem(root)).join(''), spiffe };
}
