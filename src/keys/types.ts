import type { JWK } from 'jose';
import type { SIGNING_ALGORITHMS } from '../constants.js';

export type JwsAlgorithm = (typeof SIGNING_ALGORITHMS)[number];
export type KeyState = 'next' | 'active' | 'retired';
export type KeyProviderKind = 'local' | 'pkcs11';

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

/**
 * The rotation record of one JWT signing key. Times are Unix seconds. Every replica derives
 * the same decisions from these records, so they are the whole shared state.
 */
export interface KeyRecord {
  kid: string;
  alg: JwsAlgorithm;
  state: KeyState;
  createdAt: number;
  /** For `next`: the earliest time it may start signing (published long enough by then). */
  activateAt?: number;
  activatedAt?: number;
  retiredAt?: number;
}

/** A record with its public half, as `keys list` and the JWKS see it. */
export interface KeyInfo extends KeyRecord {
  publicJwk: JWK;
  /** For `retired`: when it leaves the JWKS and the store (its last token has expired). */
  removeAfter?: number;
}

export interface RotateOptions {
  /** Only these algorithms (default: every configured one). */
  algorithms?: JwsAlgorithm[];
  /**
   * Activate a fresh key now instead of after the JWKS cache period. Relying parties with a
   * cached JWKS reject new tokens until they refetch: for a suspected key compromise only.
   */
  immediate?: boolean;
}

/** Where signing keys live: `local` (files, mode 0600) or `pkcs11` (an HSM). */
export interface KeyProvider {
  readonly kind: KeyProviderKind;
  /** The key that signs now for `alg`; rejects with `temporarily_unavailable` when unusable. */
  signingKey(alg: JwsAlgorithm): Promise<SigningKey>;
  /** Public keys for `/.well-known/jwks.json`: next, active and still-valid retired keys. */
  publishedKeys(): Promise<PublishedKey[]>;
  /** A long-lived key by purpose (e.g. `x509-ca`), created on first use; not rotated. */
  namedKey(name: string, alg: JwsAlgorithm): Promise<SigningKey>;
  /** Keys usable (for `/readyz`). */
  ready(): Promise<boolean>;
  /** Every JWT signing key in the store with its rotation times (for `keys list`). */
  list(): Promise<KeyInfo[]>;
  /** Starts a rotation now (see {@link RotateOptions}); returns the keys afterwards. */
  rotate(options?: RotateOptions): Promise<KeyInfo[]>;
  /** Creates the keys of configured algorithms that have none; returns the keys afterwards. */
  generate(): Promise<KeyInfo[]>;
  /** Rereads the shared state and applies the transitions that are due (the timer's job). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** Signs with one private key, in JWS signature form. */
export type Signer = (data: Uint8Array) => Promise<Uint8Array>;

/** A key as a store holds it: its rotation record plus the public JWK. */
export interface StoredKey extends KeyRecord {
  publicJwk: JWK;
}

/**
 * The storage half of a provider (`local` files or a PKCS#11 token): it keeps keys and their
 * records; the rotation logic on top of it (provider.ts) is the same for every store.
 */
export interface KeyStore {
  readonly kind: KeyProviderKind;
  load(): Promise<StoredKey[]>;
  /** Generates a key pair for `alg` and stores it with `record`. */
  create(alg: JwsAlgorithm, record: Omit<KeyRecord, 'kid' | 'alg'>): Promise<StoredKey>;
  /** Writes the state fields of these records (matched by kid). */
  save(records: KeyRecord[]): Promise<void>;
  remove(kid: string): Promise<void>;
  signer(key: StoredKey): Promise<Signer>;
  /** The long-lived key `name`; created when absent and `create` is true. */
  namedKey(name: string, alg: JwsAlgorithm, create: boolean): Promise<SigningKey | undefined>;
  /**
   * A lock the store itself can offer across processes (the local store: a lock file beside
   * the keys), taken with the shared-cache lock; resolves to a release function, or undefined
   * when another process holds it.
   */
  tryLock?(): Promise<(() => Promise<void>) | undefined>;
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
