export {
  createKeyProvider,
  publicJwks,
  DEFAULT_JWKS_CACHE_SECONDS,
  type KeyProviderDeps,
} from './create.js';
export { signJws } from './jws.js';
export { signingKeyFromPrivateKey } from './local.js';
export { jwkThumbprint } from './jwk.js';
export { KeyStoreError } from './errors.js';
export { pkcs11AddonMissing } from './pkcs11-addon.js';
export { planRotation, type RotationPolicy, type RotationAction } from './rotation.js';
export type {
  JwsAlgorithm,
  KeyInfo,
  KeyProvider,
  KeyRecord,
  KeyState,
  PublishedKey,
  RotateOptions,
  SigningKey,
} from './types.js';
