import type { JWK } from 'jose';
import type { SharedCache } from '../cache/index.js';
import type { KeysConfig } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import { createLocalStore } from './local.js';
import { pkcs11AddonMissing } from './pkcs11-addon.js';
import { createRotatingProvider } from './provider.js';
import type { RotationPolicy } from './rotation.js';
import type { KeyProvider, KeyProviderKind, KeyStore } from './types.js';

export interface KeyProviderDeps {
  logger: Logger;
  metrics?: Metrics;
  /** Holds the rotation lock; Redis makes it effective across replicas. */
  cache?: SharedCache;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Where `pinEnv` is read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** How long relying parties may cache the JWKS: a new key is published this long before it signs. */
  jwksCacheSeconds?: number;
  /** The longest lifetime of an issued token: a retired key stays published this long (+ 60 s). */
  maxTokenLifetimeSeconds?: number;
  /** How often replicas reread the shared key state (default 30 s). */
  syncSeconds?: number;
  /** Run the rotation timer (default true); `tessera keys` turns it off. */
  autoRotate?: boolean;
  /** Create missing keys and apply due transitions at start (default true). */
  applyAtStart?: boolean;
}

/** Clock skew a relying party may allow beyond `exp` (the leeway most JWT libraries default to). */
const EXPIRY_LEEWAY_SECONDS = 60;
export const DEFAULT_JWKS_CACHE_SECONDS = 300;
const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 12 * 3600;
const DEFAULT_SYNC_SECONDS = 30;

type StoreFactory = (config: KeysConfig, deps: KeyProviderDeps) => Promise<KeyStore>;

/** One entry per `keys.provider`; pkcs11js (a native addon) is loaded only when chosen. */
const STORES: Record<KeyProviderKind, StoreFactory> = {
  local: (config, deps) =>
    createLocalStore({ dir: config.dir, rsaBits: config.rsaBits, logger: deps.logger }),
  pkcs11: async (config, deps) => {
    const missing = pkcs11AddonMissing();
    if (missing) throw new KeyStoreError(`keys.provider ${missing}`, 'PKCS11_ADDON_MISSING');
    const { createPkcs11Store } = await import('./pkcs11.js');
    return createPkcs11Store({ config, env: deps.env ?? process.env, logger: deps.logger });
  },
};

/** The rotation timings that follow from the config and the deps (see docs/keys.md). */
function rotationPolicy(
  config: KeysConfig,
  deps: Pick<KeyProviderDeps, 'jwksCacheSeconds' | 'maxTokenLifetimeSeconds' | 'syncSeconds'>,
): RotationPolicy {
  const sync = deps.syncSeconds ?? DEFAULT_SYNC_SECONDS;
  const publishDelay = (deps.jwksCacheSeconds ?? DEFAULT_JWKS_CACHE_SECONDS) + sync;
  return {
    algorithms: config.algorithms,
    every: config.rotation.every,
    lead: Math.max(config.rotation.overlap, publishDelay),
    publishDelay,
    retention:
      (deps.maxTokenLifetimeSeconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS) +
      EXPIRY_LEEWAY_SECONDS +
      sync,
  };
}

/**
 * The key provider `config.provider` names, with its keys created or loaded and its rotation
 * timer running.
 *
 * @example const keys = await createKeyProvider(config.keys, { logger, cache, jwksCacheSeconds: 300 });
 */
export async function createKeyProvider(
  config: KeysConfig,
  deps: KeyProviderDeps,
): Promise<KeyProvider> {
  const policy = rotationPolicy(config, deps);
  if (policy.every !== undefined && policy.every < policy.publishDelay) {
    deps.logger.warn(
      { every: policy.every, publishDelay: policy.publishDelay },
      'keys.rotation.every is shorter than the JWKS cache period; keys rotate at most that often',
    );
  }
  const store = await STORES[config.provider](config, deps);
  try {
    return await createRotatingProvider({
      store,
      policy,
      logger: deps.logger,
      metrics: deps.metrics,
      cache: deps.cache,
      now: deps.now ?? Date.now,
      syncSeconds: deps.syncSeconds ?? DEFAULT_SYNC_SECONDS,
      autoRotate: deps.autoRotate ?? true,
      applyAtStart: deps.applyAtStart ?? true,
    });
  } catch (error) {
    await store.close();
    throw error;
  }
}

/**
 * The document of `/.well-known/jwks.json`: next, active and unexpired retired keys, each with
 * `kid` (RFC 7638 thumbprint), `alg` and `use: 'sig'`.
 */
export async function publicJwks(provider: KeyProvider): Promise<{ keys: JWK[] }> {
  return { keys: (await provider.publishedKeys()).map((key) => key.jwk) };
}
