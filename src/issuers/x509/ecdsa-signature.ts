import {
  DerError,
  children,
  positiveIntegerContent,
  readTlv,
  sequence,
  unsignedInteger,
} from './der.js';

/**
 * ECDSA signatures come in two shapes: JWS/WebCrypto/PKCS#11 raw r‖s (fixed width) and the
 * X.509/CSR DER `SEQUENCE { r INTEGER, s INTEGER }`. Key providers return raw; certificates
 * need DER; CSRs arrive in DER. Both directions are strict (tested with the Wycheproof vectors).
 */

/** Raw r‖s (each `raw.length / 2` bytes) to DER. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0)
    throw new DerError('raw ECDSA signature has odd length');
  const half = raw.length / 2;
  const r = raw.subarray(0, half);
  const s = raw.subarray(half);
  if (r.every((byte) => byte === 0) || s.every((byte) => byte === 0))
    throw new DerError('ECDSA r or s is zero');
  return sequence(unsignedInteger(r), unsignedInteger(s));
}

/**
 * DER to raw r‖s, each left-padded to `size` bytes (32 for P-256, 48 for P-384).
 * Refuses BER (long or indefinite lengths, padding), trailing bytes, negative or zero
 * integers and integers wider than the curve.
 */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array {
  const outer = readTlv(der, 0);
  if (outer.tag !== 0x30) throw new DerError('ECDSA signature is not a SEQUENCE');
  if (outer.end !== der.length) throw new DerError('trailing bytes after ECDSA signature');
  const parts = children(der, outer);
  if (parts.length !== 2) throw new DerError('ECDSA signature must hold exactly r and s');
  const raw = new Uint8Array(size * 2);
  parts.forEach((part, index) => {
    const magnitude = positiveIntegerContent(der, part);
    if (magnitude.length > size) throw new DerError('ECDSA integer wider than the curve');
    raw.set(magnitude, index * size + size - magnitude.length);
  });
  return raw;
}
