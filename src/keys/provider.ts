import { randomUUID } from 'node:crypto';
import type { SharedCache } from '../cache/index.js';
import { temporarilyUnavailable } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import { planRotation, recordOf, removeAfter, type RotationAction, type RotationPolicy, type RotationRequest } from './rotation.js';
import type { JwsAlgorithm, KeyInfo, KeyProvider, KeyStore, PublishedKey, SigningKey, StoredKey } from './types.js';

/**
 * The provider every store shares: it keeps an in-memory snapshot (so signing is a map
 * lookup), rereads the store's records every `syncSeconds` (so replicas converge), and
 * applies the rotation plan under a shared-cache lock (so two replicas never rotate at once).
 */
export interface RotatingProviderOptions {
  store: KeyStore;
  policy: RotationPolicy;
  logger: Logger;
  metrics?: Metrics;
  cache?: SharedCache;
  /** Milliseconds since the epoch. */
  now: () => number;
  syncSeconds: number;
  /** Run the sync timer (the server); off for one-shot commands. */
  autoRotate: boolean;
  /** Create missing keys and apply due transitions before returning (the server and `keys generate`). */
  applyAtStart: boolean;
}

export const ROTATION_LOCK = 'tessera:keys:rotation-lock';
const LOCK_TTL_MS = 60_000;

export async function createRotatingProvider(options: RotatingProviderOptions): Promise<KeyProvider> {
  const { store, policy, logger, metrics, cache, now } = options;
  const nowSeconds = (): number => Math.floor(now() / 1000);
  const signers = new Map<string, SigningKey>();
  const named = new Map<string, Promise<SigningKey>>();
  let active = new Map<JwsAlgorithm, SigningKey>();
  let snapshot: StoredKey[] = [];
  let running: Promise<unknown> = Promise.resolve();
  let closed = false;

  /** Every signature is timed: an HSM slowing down shows in the latency histogram before requests fail. */
  const timed = (alg: JwsAlgorithm, sign: SigningKey['sign']): SigningKey['sign'] => {
    const histogram = metrics?.signDuration;
    if (!histogram) return sign;
    const labels = { provider: store.kind, alg };
    return async (data) => {
      const started = performance.now();
      try {
        return await sign(data);
      } finally {
        histogram.observe(labels, (performance.now() - started) / 1000);
      }
    };
  };

  const signingKeyFor = async (key: StoredKey): Promise<SigningKey> => {
    const cached = signers.get(key.kid);
    if (cached) return cached;
    const sign = timed(key.alg, await store.signer(key));
    const signingKey: SigningKey = { kid: key.kid, alg: key.alg, publicJwk: key.publicJwk, sign };
    signers.set(key.kid, signingKey);
    return signingKey;
  };

  const install = async (keys: StoredKey[]): Promise<void> => {
    const nextActive = new Map<JwsAlgorithm, SigningKey>();
    for (const key of keys) if (key.state === 'active') nextActive.set(key.alg, await signingKeyFor(key));
    const kept = new Set(keys.map((key) => key.kid));
    for (const kid of signers.keys()) if (!kept.has(kid)) signers.delete(kid);
    snapshot = keys;
    active = nextActive;
  };

  const apply = async (actions: RotationAction[], request: RotationRequest): Promise<void> => {
    const at = nowSeconds();
    for (const action of actions) {
      if (action.kind !== 'create') continue;
      const record = { state: action.state, createdAt: at, activateAt: action.activateAt, activatedAt: action.state === 'active' ? at : undefined };
      const key = await store.create(action.alg, record);
      logger.info({ kid: key.kid, alg: key.alg, state: key.state, activateAt: key.activateAt }, 'signing key added');
      if (action.state === 'active' && request.immediate) metrics?.keyRotations.inc({ alg: action.alg });
    }
    const updates = actions.flatMap((action) => (action.kind === 'update' ? [recordOf(action.record)] : []));
    if (updates.length > 0) {
      await store.save(updates);
      for (const record of updates) {
        logger.info({ kid: record.kid, alg: record.alg, state: record.state }, `signing key ${record.state === 'active' ? 'activated' : record.state}`);
        if (record.state === 'active') metrics?.keyRotations.inc({ alg: record.alg });
      }
    }
    for (const action of actions) {
      if (action.kind !== 'remove') continue;
      await store.remove(action.kid);
      logger.info({ kid: action.kid }, 'signing key removed');
    }
  };

  /** The shared-cache lock (Redis across replicas), then the store's own lock if it has one. */
  const acquireLocks = async (): Promise<(() => Promise<void>) | undefined> => {
    // Our own token in the lock: if this apply outlives the TTL and a peer takes the lock, the
    // release below leaves the peer's lock alone.
    const owner = randomUUID();
    if (cache && !(await cache.acquireLock(ROTATION_LOCK, LOCK_TTL_MS, owner))) return undefined;
    const releaseCache = async (): Promise<void> => {
      if (cache && !(await cache.releaseLock(ROTATION_LOCK, owner))) {
        logger.warn({ lock: ROTATION_LOCK, ttlMs: LOCK_TTL_MS }, 'key rotation outlived its lock; another replica may have taken it meanwhile');
      }
    };
    const releaseStore = store.tryLock ? await store.tryLock().catch(async (error: unknown) => {
      await releaseCache();
      throw error;
    }) : async () => undefined;
    if (!releaseStore) {
      await releaseCache();
      return undefined;
    }
    return async () => {
      await releaseStore();
      await releaseCache();
    };
  };

  /** One sync: reread, plan, and apply under the lock when something is due. */
  const sync = async (request: RotationRequest, requireLock: boolean): Promise<void> => {
    let keys = await store.load();
    if (planRotation(keys, policy, nowSeconds(), request).length > 0) {
      const release = await acquireLocks();
      if (release) {
        try {
          keys = await store.load();
          await apply(planRotation(keys, policy, nowSeconds(), request), request);
          keys = await store.load();
        } finally {
          await release();
        }
      } else if (requireLock) {
        throw new KeyStoreError('another replica is rotating keys right now; try again in a minute', 'ROTATION_LOCKED');
      } else {
        logger.debug('key rotation due but another replica holds the lock');
      }
    }
    await install(keys);
  };

  // Serialised: the timer, `rotate` and `generate` never interleave within one process.
  const serial = <T>(task: () => Promise<T>): Promise<T> => {
    const result = running.then(task, task);
    running = result.catch(() => undefined);
    return result;
  };

  /** An active key, or a next one that will sign once published long enough. */
  const hasKey = (alg: JwsAlgorithm): boolean => active.has(alg) || snapshot.some((key) => key.alg === alg && key.state === 'next');

  const order = (key: StoredKey): number => key.activatedAt ?? key.activateAt ?? Number.MAX_SAFE_INTEGER;
  const list = async (): Promise<KeyInfo[]> =>
    (await store.load())
      .sort((a, b) => a.createdAt - b.createdAt || order(a) - order(b))
      .map((key) => ({ ...key, removeAfter: removeAfter(key, policy) }));

  if (options.applyAtStart) {
    await sync({}, false);
    // A fresh replica whose peer holds the lock while creating the first keys: wait for them
    // (not for a next key waiting out its publish delay: that takes minutes, by design).
    for (let attempt = 0; attempt < 20 && !policy.algorithms.every(hasKey); attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      await sync({}, false);
    }
  } else {
    await install(await store.load());
  }

  const timer = options.autoRotate
    ? setInterval(() => {
        void serial(() => sync({}, false)).catch((error: unknown) => logger.error({ err: errorSummary(error) }, 'key sync failed'));
      }, options.syncSeconds * 1000)
    : undefined;
  timer?.unref();

  return {
    kind: store.kind,
    async signingKey(alg) {
      const key = active.get(alg);
      if (key) return key;
      if (!policy.algorithms.includes(alg)) {
        // A role asking for an algorithm the operator did not enable is a configuration gap, not a
        // client error: the role cannot be served until keys.algorithms lists it.
        throw temporarilyUnavailable(`no ${alg} signing key is configured`, { detail: { alg, configured: policy.algorithms } });
      }
      throw temporarilyUnavailable('signing key unavailable', { detail: { alg, provider: store.kind } });
    },
    async publishedKeys(): Promise<PublishedKey[]> {
      const at = nowSeconds();
      return snapshot
        .filter((key) => key.state !== 'retired' || at < (removeAfter(key, policy) ?? 0))
        .map((key) => ({ jwk: key.publicJwk, state: key.state }));
    },
    namedKey(name, alg) {
      const id = `${name}:${alg}`;
      let key = named.get(id);
      if (!key) {
        key = store.namedKey(name, alg, true).then((found) => {
          if (!found) throw new KeyStoreError(`named key ${name} could not be created`, 'KEY_MISSING');
          return { kid: found.kid, alg: found.alg, publicJwk: found.publicJwk, sign: timed(found.alg, found.sign) };
        });
        key.catch(() => named.delete(id));
        named.set(id, key);
      }
      return key;
    },
    async ready() {
      // An algorithm added to a running broker has only a next key for the publish delay: its
      // roles wait with temporarily_unavailable, but the other algorithms keep the replica ready.
      return !closed && policy.algorithms.every(hasKey) && (await store.ready());
    },
    list,
    async rotate(request = {}) {
      const force = request.algorithms ?? [...policy.algorithms];
      await serial(() => sync({ force, immediate: request.immediate }, true));
      return list();
    },
    async generate() {
      await serial(() => sync({ createOnly: true }, true));
      return list();
    },
    refresh: () => serial(() => sync({}, false)),
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await running;
      await store.close();
    },
  };
}

/** Error name, code and message only: never the error object (it may carry a stack with data). */
export function errorSummary(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { name: error.name, message: error.message, code: (error as { code?: unknown }).code };
  return { message: String(error) };
}

