import { constants, verify, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import type { AcceptedAlgorithm } from './verification-keys.js';

/**
 * The JWS signature check on the hot path: node:crypto `verify()` on the `KeyObject` imported
 * once when the JWKS was ingested. jose's `compactVerify` runs the same OpenSSL code through
 * WebCrypto, which costs ~110 µs per RS256 verify against ~26 µs here (it re-wraps the key and
 * hops to the libuv pool per call). The checks jose makes on the key are kept: the key type
 * and curve must fit the algorithm, RSA keys have at least 2048 bits, EdDSA means Ed25519 (jose
 * refuses Ed448 keys for it), PS* use a salt as long as the hash (RFC 7518 §3.5).
 *
 * The KeyObject is handed over bare wherever the defaults fit (PKCS#1 v1.5 for RSA, DER for
 * ECDSA): Node 24 answers a `{ key, …options }` object by first probing it as a KeyObject and
 * as a CryptoKey, two caught exceptions that double the cost of a P-256 operation. ECDSA
 * signatures are therefore turned from JWS r‖s into DER here; only PS* pays for the options.
 *
 * fast-jwt was not taken: its verifier calls node:crypto too, so it cannot beat this call, and
 * it would bring a parser and algorithm handling of its own in front of ours.
 */
interface Scheme {
  /** `null` for EdDSA (the hash is part of the algorithm). */
  hash: string | null;
  keyType: 'rsa' | 'ec' | 'ed25519';
  /** OpenSSL's curve name, as `asymmetricKeyDetails.namedCurve` reports it. */
  curve?: string;
  /** ECDSA: exact length of r‖s (RFC 7518 §3.4). */
  signatureBytes?: number;
  /** Only where the defaults do not fit (RSA-PSS). */
  options?: Omit<VerifyKeyObjectInput, 'key'>;
}

const MIN_RSA_BITS = 2048;
const pkcs1 = (hash: string): Scheme => ({ hash, keyType: 'rsa' });
const pss = (hash: string, saltLength: number): Scheme => ({
  hash,
  keyType: 'rsa',
  options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength },
});
const ecdsa = (hash: string, curve: string, signatureBytes: number): Scheme => ({
  hash,
  keyType: 'ec',
  curve,
  signatureBytes,
});

const SCHEMES: Record<AcceptedAlgorithm, Scheme> = {
  RS256: pkcs1('sha256'),
  RS384: pkcs1('sha384'),
  RS512: pkcs1('sha512'),
  PS256: pss('sha256', 32),
  PS384: pss('sha384', 48),
  PS512: pss('sha512', 64),
  ES256: ecdsa('sha256', 'prime256v1', 64),
  ES384: ecdsa('sha384', 'secp384r1', 96),
  ES512: ecdsa('sha512', 'secp521r1', 132),
  EdDSA: { hash: null, keyType: 'ed25519' },
};

/**
 * `asymmetricKeyDetails` of each key, read once: the getter asks OpenSSL and builds a new object
 * on every read, and a KeyObject's details never change.
 */
const keyDetails = new WeakMap<
  KeyObject,
  { modulusLength?: number; namedCurve?: string } | undefined
>();
function detailsOf(key: KeyObject): { modulusLength?: number; namedCurve?: string } | undefined {
  if (keyDetails.has(key)) return keyDetails.get(key);
  const details = key.asymmetricKeyDetails;
  keyDetails.set(key, details);
  return details;
}

/** Whether `key` is a public key of the type, curve and size `scheme` needs. */
function keyFits(scheme: Scheme, key: KeyObject): boolean {
  if (key.type !== 'public' || key.asymmetricKeyType !== scheme.keyType) return false;
  const details = detailsOf(key);
  if (scheme.keyType === 'rsa') return (details?.modulusLength ?? 0) >= MIN_RSA_BITS;
  return scheme.curve === undefined || details?.namedCurve === scheme.curve;
}

/** One half of r‖s as a minimal positive DER INTEGER (zero stays zero, which OpenSSL refuses). */
function derInteger(value: Uint8Array): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start += 1;
  const pad = (value[start] as number) & 0x80 ? 1 : 0;
  const length = pad + value.length - start;
  const out = Buffer.alloc(2 + length);
  out[0] = 0x02;
  out[1] = length;
  out.set(value.subarray(start), 2 + pad);
  return out;
}

/** JWS r‖s → `SEQUENCE { r INTEGER, s INTEGER }` (P-521's needs a long-form length). */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  const half = raw.length / 2;
  const r = derInteger(raw.subarray(0, half));
  const s = derInteger(raw.subarray(half));
  const length = r.length + s.length;
  return Buffer.concat([Buffer.from(length < 0x80 ? [0x30, length] : [0x30, 0x81, length]), r, s]);
}

/**
 * Whether `signature` is `alg`'s signature of `signingInput` (the ASCII bytes of
 * `header.payload`) under `key`. False for a key that does not fit `alg`, never throws.
 *
 * @example verifyJwsSignature('RS256', key, Buffer.from(token.slice(0, token.lastIndexOf('.'))), signature)
 */
export function verifyJwsSignature(
  alg: AcceptedAlgorithm,
  key: KeyObject,
  signingInput: Uint8Array,
  signature: Uint8Array,
): boolean {
  const scheme = SCHEMES[alg];
  if (!scheme || !keyFits(scheme, key)) return false;
  if (scheme.signatureBytes !== undefined && signature.length !== scheme.signatureBytes)
    return false;
  try {
    if (scheme.options)
      return verify(scheme.hash, signingInput, { key, ...scheme.options }, signature);
    return verify(
      scheme.hash,
      signingInput,
      key,
      scheme.signatureBytes === undefined ? signature : ecdsaRawToDer(signature),
    );
  } catch {
    // OpenSSL refuses some malformed signatures (e.g. longer than the modulus) with an error.
    return false;
  }
}
