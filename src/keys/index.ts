export {
  createKeyProvider,
  publicJwks,
  rotationPolicy,
  DEFAULT_JWKS_CACHE_SECONDS,
  DEFAULT_MAX_TOKEN_LIFETIME_SECONDS,
  DEFAULT_SYNC_SECONDS,
  EXPIRY_LEEWAY_SECONDS,
  type KeyProviderDeps,
} from './create.js';
export { signJws } from './jws.js';
export { signingKeyFromPrivateKey } from './local.js';
export { jwkThumbprint } from './jwk.js';
export { KeyStoreError } from './errors.js';
export { planRotation, type RotationPolicy, type RotationAction } from './rotation.js';
export type { JwsAlgorithm, KeyInfo, KeyProvider, KeyRecord, KeyState, PublishedKey, RotateOptions, SigningKey } from './types.js';
