import 'reflect-metadata';
import { createPublicKey, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type BufferSource = webcrypto.BufferSource;
import type { SigningKey } from '../../keys/index.js';

/**
 * @peculiar/x509 signs through a WebCrypto `crypto` object and a `CryptoKey`. A provider key
 * may live in an HSM and only offers `sign(data)`, so this bridge hands the library a crypto
 * object whose `subtle.sign` calls the provider and whose `exportKey` returns the public key.
 * Used for CA setup only (self-signed root, CA CSR), never on the request path.
 */
export interface BridgedKey {
  crypto: webcrypto.Crypto;
  keys: webcrypto.CryptoKeyPair;
  signingAlgorithm: { name: string; hash: string };
  /** The provider key's SubjectPublicKeyInfo, DER. */
  spki: Uint8Array;
}

const ALGORITHMS = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256', hash: { name: 'SHA-256' } },
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } },
} as const;

/** The provider key's public half as SPKI DER. */
export function spkiOf(key: SigningKey): Uint8Array {
  const { kty, crv, x, y, n, e } = key.publicJwk;
  const jwk = kty === 'EC' ? { kty, crv, x, y } : { kty: kty ?? 'RSA', n, e };
  return new Uint8Array(
    createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' }),
  );
}

export function bridgeKey(key: SigningKey): BridgedKey {
  if (key.alg !== 'ES256' && key.alg !== 'RS256')
    throw new Error(`an X.509 CA key must be ES256 or RS256, not ${key.alg}`);
  const algorithm = ALGORITHMS[key.alg];
  const spki = spkiOf(key);
  const fakeKey = (type: webcrypto.KeyType): CryptoKey =>
    ({
      algorithm,
      type,
      extractable: false,
      usages: type === 'private' ? ['sign'] : ['verify'],
    }) as unknown as CryptoKey;
  const keys = { privateKey: fakeKey('private'), publicKey: fakeKey('public') };
  const subtle = {
    async sign(
      _algorithm: unknown,
      cryptoKey: CryptoKey,
      data: BufferSource,
    ): Promise<ArrayBuffer> {
      if (cryptoKey !== keys.privateKey) throw new Error('bridge signs only with its own key');
      const bytes = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : new Uint8Array(data);
      const signature = await key.sign(bytes);
      return signature.slice().buffer;
    },
    exportKey(format: string, cryptoKey: CryptoKey): Promise<ArrayBuffer> {
      if (format !== 'spki' || cryptoKey.type !== 'public')
        return Promise.reject(new Error('bridge exports only the public key as spki'));
      return Promise.resolve(spki.slice().buffer);
    },
    digest: (alg: webcrypto.AlgorithmIdentifier, data: BufferSource) =>
      webcrypto.subtle.digest(alg, data),
    importKey: webcrypto.subtle.importKey.bind(webcrypto.subtle),
    verify: webcrypto.subtle.verify.bind(webcrypto.subtle),
  };
  const crypto = {
    subtle,
    getRandomValues: <T extends ArrayBufferView | null>(array: T): T =>
      webcrypto.getRandomValues(array as never),
  } as unknown as webcrypto.Crypto;
  return { crypto, keys, signingAlgorithm: { name: algorithm.name, hash: 'SHA-256' }, spki };
}
