import type { JWK } from 'jose';

export type JwsAlgorithm = 'ES256' | 'RS256' | 'PS256';
export type KeyState = 'next' | 'active' | 'retired';

/** A private key Tessera can sign with; the private half may live in an HSM. */
export interface SigningKey {
  /** RFC 7638 JWK thumbprint of the public key. */
  readonly kid: string;
  readonly alg: JwsAlgorithm;
  /** Public JWK with `kid`, `alg`, `use: 'sig'`. */
  readonly publicJwk: JWK;
  /**
   * Signs `data` with `alg` and returns the signature in JWS form
   * (ECDSA: raw r‖s, 64 bytes for P-256; RSA: the PKCS#1 v1.5 or PSS signature).
   */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

export interface PublishedKey {
  jwk: JWK;
  state: KeyState;
}

/** Where signing keys live: `local` (files, mode 0600) or `pkcs11` (an HSM). */
export interface KeyProvider {
  readonly kind: 'local' | 'pkcs11';
  /** The key that signs now for `alg`; rejects with `temporarily_unavailable` when unusable. */
  signingKey(alg: JwsAlgorithm): Promise<SigningKey>;
  /** Public keys for `/.well-known/jwks.json`: next, active and still-valid retired keys. */
  publishedKeys(): Promise<PublishedKey[]>;
  /** A long-lived key by purpose (e.g. `x509-ca`), created on first use; not rotated. */
  namedKey(name: string, alg: JwsAlgorithm): Promise<SigningKey>;
  /** Keys usable (for `/readyz`). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
