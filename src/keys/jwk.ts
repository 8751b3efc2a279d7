import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { JwsAlgorithm } from './types.js';

/**
 * RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, base64url.
 *
 * @example jwkThumbprint({ kty: 'EC', crv: 'P-256', x, y }) // 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'
 */
export function jwkThumbprint(jwk: JWK): string {
  const members =
    jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : jwk.kty === 'RSA'
        ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
        : undefined;
  if (!members || Object.values(members).some((value) => typeof value !== 'string')) {
    throw new Error(`cannot compute the thumbprint of a ${String(jwk.kty)} key`);
  }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** The published form: only public members, plus `kid`, `alg` and `use: 'sig'`. */
function publicSigningJwk(jwk: JWK, alg: JwsAlgorithm): JWK {
  const base: JWK =
    jwk.kty === 'EC'
      ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }
      : { kty: 'RSA', n: jwk.n, e: jwk.e };
  return { ...base, kid: jwkThumbprint(base), alg, use: 'sig' };
}

/** Public JWK of a Node key (private or public). */
export function jwkFromKeyObject(key: KeyObject, alg: JwsAlgorithm): JWK {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicSigningJwk(publicKey.export({ format: 'jwk' }), alg);
}

/** P-256 public point (uncompressed SEC1 `04‖X‖Y`) → JWK. */
export function jwkFromEcPoint(point: Uint8Array, alg: JwsAlgorithm): JWK {
  if (point.length !== 65 || point[0] !== 0x04)
    throw new Error('expected an uncompressed P-256 point');
  const bytes = Buffer.from(point);
  return publicSigningJwk(
    {
      kty: 'EC',
      crv: 'P-256',
      x: bytes.subarray(1, 33).toString('base64url'),
      y: bytes.subarray(33).toString('base64url'),
    },
    alg,
  );
}

/** RSA modulus and public exponent (big-endian) → JWK. */
export function jwkFromRsa(modulus: Uint8Array, exponent: Uint8Array, alg: JwsAlgorithm): JWK {
  return publicSigningJwk(
    {
      kty: 'RSA',
      n: Buffer.from(stripLeadingZeros(modulus)).toString('base64url'),
      e: Buffer.from(stripLeadingZeros(exponent)).toString('base64url'),
    },
    alg,
  );
}

function stripLeadingZeros(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
  return bytes.subarray(start);
}
