import { constants, generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { JwsAlgorithm, Signer } from './types.js';

const signAsync = promisify(sign);
const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * A node:crypto signer for an imported private key (the KeyObject stays with the key).
 *
 * ES256 signs inline (~29 µs): the callback form queues a job on the libuv pool and wakes the
 * loop for its answer, which under load cost more CPU per exchange than it saved and added
 * latency at low load. RSA (~1 ms for 2048 bits) goes to the pool, where it holds up no other
 * request. The KeyObject is passed bare where the defaults fit: Node 24 probes a `{ key, … }`
 * options object with two caught exceptions, which doubles the cost of a P-256 signature, so
 * ES256 signs in DER (the default) and converts to the JWS r‖s form here.
 */
export function nodeSigner(privateKey: KeyObject, alg: JwsAlgorithm): Signer {
  switch (alg) {
    case 'ES256':
      // The executor's throw is the rejection, as in an async function, without awaiting anything.
      return (data) =>
        new Promise((resolve) => resolve(ecdsaDerToRaw(sign('sha256', data, privateKey), 32)));
    case 'RS256':
      // PKCS#1 v1.5 is the default padding of an RSA key.
      return async (data) => signAsync('sha256', data, privateKey);
    case 'PS256': {
      // RFC 7518 §3.5: MGF1 with SHA-256 and a salt as long as the hash.
      const input = { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
      return async (data) => signAsync('sha256', data, input);
    }
  }
}

/**
 * OpenSSL's DER `SEQUENCE { r INTEGER, s INTEGER }` → r‖s, each left-padded to `size` bytes
 * (RFC 7518 §3.4). The input is OpenSSL's own output for a P-256 key: short-form lengths,
 * minimal positive integers.
 */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array {
  const raw = new Uint8Array(size * 2);
  let offset = 2;
  for (let half = 0; half < 2; half += 1) {
    if (der[offset] !== 0x02) throw new Error('ECDSA signature is not DER');
    const length = der[offset + 1] as number;
    let start = offset + 2;
    const end = start + length;
    while (end - start > size && der[start] === 0) start += 1;
    if (end - start > size || end > der.length) throw new Error('ECDSA signature is not DER');
    raw.set(der.subarray(start, end), half * size + size - (end - start));
    offset = end;
  }
  return raw;
}

/** A fresh private key for `alg`: P-256 for ES256, RSA of `rsaBits` for RS256 and PS256. */
export async function generatePrivateKey(alg: JwsAlgorithm, rsaBits: number): Promise<KeyObject> {
  const pair =
    alg === 'ES256'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : await generateKeyPairAsync('rsa', { modulusLength: rsaBits, publicExponent: 0x10001 });
  return pair.privateKey;
}
