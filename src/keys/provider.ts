import { randomUUID } from 'node:crypto';
import type { SharedCache } from '../cache/index.js';
import { temporarilyUnavailable } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import { errorSummary, KeyStoreError } from './errors.js';
import {
  planRotation,
  recordOf,
  removeAfter,
  type RotationAction,
  type RotationPolicy,
  type RotationRequest,
} from './rotation.js';
import type {
  JwsAlgorithm,
  KeyInfo,
  KeyProvider,
  KeyStore,
  PublishedKey,
  SigningKey,
  StoredKey,
} from './types.js';

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

/** What the provider's functions share: the options and the snapshot of the store they keep. */
interface ProviderState {
  readonly options: RotatingProviderOptions;
  /** kid → signing key of every loaded key that signed (or may sign) in this process. */
  readonly signers: Map<string, SigningKey>;
  readonly named: Map<string, Promise<SigningKey>>;
  active: Map<JwsAlgorithm, SigningKey>;
  snapshot: StoredKey[];
  /** The tail of the serialised tasks: the timer, `rotate` and `generate` never interleave. */
  running: Promise<unknown>;
  closed: boolean;
}

export async function createRotatingProvider(
  options: RotatingProviderOptions,
): Promise<KeyProvider> {
  const { store, policy, logger } = options;
  const state: ProviderState = {
    options,
    signers: new Map(),
    named: new Map(),
    active: new Map(),
    snapshot: [],
    running: Promise.resolve(),
    closed: false,
  };
  await startUp(state);
  const timer = options.autoRotate
    ? setInterval(() => {
        serial(state, () => sync(state, {}, false)).catch((error: unknown) =>
          logger.error({ err: errorSummary(error) }, 'key sync failed'),
        );
      }, options.syncSeconds * 1000)
    : undefined;
  timer?.unref();

  return {
    kind: store.kind,
    signingKey: (alg) => signingKey(state, alg),
    publishedKeys: () => Promise.resolve(publishedKeys(state)),
    namedKey: (name, alg) => namedKey(state, name, alg),
    // An algorithm added to a running broker has only a next key for the publish delay: its
    // roles wait with temporarily_unavailable, but the other algorithms keep the replica ready.
    ready: async () =>
      !state.closed &&
      policy.algorithms.every((alg) => hasKey(state, alg)) &&
      (await store.ready()),
    list: () => listKeys(state),
    async rotate(request = {}) {
      const force = request.algorithms ?? [...policy.algorithms];
      await serial(state, () => sync(state, { force, immediate: request.immediate }, true));
      return listKeys(state);
    },
    async generate() {
      await serial(state, () => sync(state, { createOnly: true }, true));
      return listKeys(state);
    },
    refresh: () => serial(state, () => sync(state, {}, false)),
    async close() {
      if (state.closed) return;
      state.closed = true;
      if (timer) clearInterval(timer);
      await state.running;
      await store.close();
    },
  };
}

const nowSeconds = (state: ProviderState): number => Math.floor(state.options.now() / 1000);

/** Creates missing keys and applies due transitions (the server, `keys generate`), or only reads them. */
async function startUp(state: ProviderState): Promise<void> {
  const { options } = state;
  if (!options.applyAtStart) {
    await install(state, await options.store.load());
    return;
  }
  await sync(state, {}, false);
  // A fresh replica whose peer holds the lock while creating the first keys: wait for them
  // (not for a next key waiting out its publish delay: that takes minutes, by design).
  for (
    let attempt = 0;
    attempt < 20 && !options.policy.algorithms.every((alg) => hasKey(state, alg));
    attempt += 1
  ) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await sync(state, {}, false);
  }
}

/** Every signature is timed: an HSM slowing down shows in the latency histogram before requests fail. */
function timedSigner(
  state: ProviderState,
  alg: JwsAlgorithm,
  sign: SigningKey['sign'],
): SigningKey['sign'] {
  const histogram = state.options.metrics?.signDuration;
  if (!histogram) return sign;
  // The labelled child is looked up once per key, not once per signature.
  const child = histogram.labels({ provider: state.options.store.kind, alg });
  return async (data) => {
    const started = performance.now();
    try {
      return await sign(data);
    } finally {
      child.observe((performance.now() - started) / 1000);
    }
  };
}

async function signingKeyFor(state: ProviderState, key: StoredKey): Promise<SigningKey> {
  const cached = state.signers.get(key.kid);
  if (cached) return cached;
  const sign = timedSigner(state, key.alg, await state.options.store.signer(key));
  const signing: SigningKey = { kid: key.kid, alg: key.alg, publicJwk: key.publicJwk, sign };
  state.signers.set(key.kid, signing);
  return signing;
}

/** Makes `keys` the snapshot: the active key per algorithm signs, signers of removed keys go. */
async function install(state: ProviderState, keys: StoredKey[]): Promise<void> {
  const active = new Map<JwsAlgorithm, SigningKey>();
  for (const key of keys)
    if (key.state === 'active') active.set(key.alg, await signingKeyFor(state, key));
  const kept = new Set(keys.map((key) => key.kid));
  for (const kid of state.signers.keys()) if (!kept.has(kid)) state.signers.delete(kid);
  state.snapshot = keys;
  state.active = active;
}

/** One sync: reread, plan, and apply under the lock when something is due. */
async function sync(
  state: ProviderState,
  request: RotationRequest,
  requireLock: boolean,
): Promise<void> {
  const { store, policy, logger } = state.options;
  let keys = await store.load();
  if (planRotation(keys, policy, nowSeconds(state), request).length > 0) {
    const release = await acquireLocks(state);
    if (release) {
      try {
        keys = await store.load();
        await applyActions(state, planRotation(keys, policy, nowSeconds(state), request), request);
        keys = await store.load();
      } finally {
        await release();
      }
    } else if (requireLock) {
      throw new KeyStoreError(
        'another replica is rotating keys right now; try again in a minute',
        'ROTATION_LOCKED',
      );
    } else {
      logger.debug('key rotation due but another replica holds the lock');
    }
  }
  await install(state, keys);
}

function serial<T>(state: ProviderState, task: () => Promise<T>): Promise<T> {
  const result = state.running.then(task, task);
  state.running = result.catch(() => undefined);
  return result;
}

/** The shared-cache lock (Redis across replicas), then the store's own lock if it has one. */
async function acquireLocks(state: ProviderState): Promise<(() => Promise<void>) | undefined> {
  const { cache, store, logger } = state.options;
  // Our own token in the lock: if this apply outlives the TTL and a peer takes the lock, the
  // release below leaves the peer's lock alone.
  const owner = randomUUID();
  if (cache && !(await cache.acquireLock(ROTATION_LOCK, LOCK_TTL_MS, owner))) return undefined;
  const releaseCache = async (): Promise<void> => {
    if (cache && !(await cache.releaseLock(ROTATION_LOCK, owner))) {
      logger.warn(
        { lock: ROTATION_LOCK, ttlMs: LOCK_TTL_MS },
        'key rotation outlived its lock; another replica may have taken it meanwhile',
      );
    }
  };
  let releaseStore: (() => Promise<void>) | undefined;
  try {
    releaseStore = store.tryLock ? await store.tryLock() : () => Promise.resolve();
  } catch (error) {
    await releaseCache();
    throw error;
  }
  if (!releaseStore) {
    await releaseCache();
    return undefined;
  }
  const held = releaseStore;
  return async () => {
    await held();
    await releaseCache();
  };
}

/** Creates, then updates, then removes, so a crash part-way never leaves an algorithm without a key. */
async function applyActions(
  state: ProviderState,
  actions: RotationAction[],
  request: RotationRequest,
): Promise<void> {
  await createKeys(state, actions, request);
  await saveRecords(state, actions);
  await removeKeys(state, actions);
}

async function createKeys(
  state: ProviderState,
  actions: RotationAction[],
  request: RotationRequest,
): Promise<void> {
  const { store, logger, metrics } = state.options;
  const at = nowSeconds(state);
  for (const action of actions) {
    if (action.kind !== 'create') continue;
    const record = {
      state: action.state,
      createdAt: at,
      activateAt: action.activateAt,
      activatedAt: action.state === 'active' ? at : undefined,
    };
    const key = await store.create(action.alg, record);
    logger.info(
      { kid: key.kid, alg: key.alg, state: key.state, activateAt: key.activateAt },
      'signing key added',
    );
    if (action.state === 'active' && request.immediate)
      metrics?.keyRotations.inc({ alg: action.alg });
  }
}

async function saveRecords(state: ProviderState, actions: RotationAction[]): Promise<void> {
  const { store, logger, metrics } = state.options;
  const updates = actions.flatMap((action) =>
    action.kind === 'update' ? [recordOf(action.record)] : [],
  );
  if (updates.length === 0) return;
  await store.save(updates);
  for (const record of updates) {
    logger.info(
      { kid: record.kid, alg: record.alg, state: record.state },
      `signing key ${record.state === 'active' ? 'activated' : record.state}`,
    );
    if (record.state === 'active') metrics?.keyRotations.inc({ alg: record.alg });
  }
}

async function removeKeys(state: ProviderState, actions: RotationAction[]): Promise<void> {
  for (const action of actions) {
    if (action.kind !== 'remove') continue;
    await state.options.store.remove(action.kid);
    state.options.logger.info({ kid: action.kid }, 'signing key removed');
  }
}

/** An active key, or a next one that will sign once published long enough. */
const hasKey = (state: ProviderState, alg: JwsAlgorithm): boolean =>
  state.active.has(alg) || state.snapshot.some((key) => key.alg === alg && key.state === 'next');

function signingKey(state: ProviderState, alg: JwsAlgorithm): Promise<SigningKey> {
  const key = state.active.get(alg);
  if (key) return Promise.resolve(key);
  const { policy, store } = state.options;
  if (!policy.algorithms.includes(alg)) {
    // A role asking for an algorithm the operator did not enable is a configuration gap, not a
    // client error: the role cannot be served until keys.algorithms lists it.
    return Promise.reject(
      temporarilyUnavailable(`no ${alg} signing key is configured`, {
        reason: 'signing_algorithm_not_configured',
        detail: { alg, configured: policy.algorithms },
      }),
    );
  }
  return Promise.reject(
    temporarilyUnavailable('signing key unavailable', {
      reason: 'signing_key_unavailable',
      detail: { alg, provider: store.kind },
    }),
  );
}

function publishedKeys(state: ProviderState): PublishedKey[] {
  const at = nowSeconds(state);
  return state.snapshot
    .filter((key) => key.state !== 'retired' || at < (removeAfter(key, state.options.policy) ?? 0))
    .map((key) => ({ jwk: key.publicJwk, state: key.state }));
}

/** Long-lived keys are found (or created) once per name and algorithm; a failure is retried next time. */
function namedKey(state: ProviderState, name: string, alg: JwsAlgorithm): Promise<SigningKey> {
  const id = `${name}:${alg}`;
  let key = state.named.get(id);
  if (!key) {
    key = state.options.store.namedKey(name, alg, true).then((found) => {
      if (!found) throw new KeyStoreError(`named key ${name} could not be created`, 'KEY_MISSING');
      return {
        kid: found.kid,
        alg: found.alg,
        publicJwk: found.publicJwk,
        sign: timedSigner(state, found.alg, (data) => found.sign(data)),
      };
    });
    key.catch(() => state.named.delete(id));
    state.named.set(id, key);
  }
  return key;
}

const order = (key: StoredKey): number =>
  key.activatedAt ?? key.activateAt ?? Number.MAX_SAFE_INTEGER;

async function listKeys(state: ProviderState): Promise<KeyInfo[]> {
  return (await state.options.store.load())
    .sort((a, b) => a.createdAt - b.createdAt || order(a) - order(b))
    .map((key) => ({ ...key, removeAfter: removeAfter(key, state.options.policy) }));
}
