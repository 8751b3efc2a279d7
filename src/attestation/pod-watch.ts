import type { Logger } from '../observability/index.js';
import { KubeCallError, type KubeApi, type WatchEvent } from './kube.js';
import { podRecord } from './pod-record.js';
import type { PodRecord } from './types.js';

/**
 * The pods of one namespace, kept current by a list followed by a watch. A watch that ends is
 * resumed from the last resource version it saw (no list); only a 410 Gone (the version was
 * compacted away) costs one new list. Failures back off exponentially, so an API server outage
 * never turns into a burst of requests.
 */
export interface NamespaceWatch {
  readonly namespace: string;
  /** The first list has completed (the store is a full picture, not a partial one). */
  synced(): boolean;
  /** Resolves when the first list completed or failed. */
  ready(): Promise<void>;
  /** Milliseconds clock value of the last proof the data was current (now, while the watch is open). */
  lastContact(): number | undefined;
  get(name: string): PodRecord | undefined;
  size(): number;
  stop(): void;
}

export interface WatchOptions {
  api: KubeApi;
  namespace: string;
  now: () => number;
  logger: Logger;
  /** First retry delay; doubles per consecutive failure up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How long the watch request may take to be established. */
  connectTimeoutMs?: number;
  onEvent?: (kind: 'list' | 'watch' | 'relist' | 'error') => void;
}

export function watchNamespace(options: WatchOptions): NamespaceWatch {
  const { namespace, now } = options;
  let resolveReady: () => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (resolveReady = resolve));
  const state: WatchState = {
    options,
    retryBaseMs: options.retryBaseMs ?? 500,
    retryMaxMs: options.retryMaxMs ?? 30_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    pods: new Map(),
    resourceVersion: '',
    synced: false,
    connected: false,
    contactAt: undefined,
    stopped: false,
    failures: 0,
    timer: undefined,
    current: undefined,
    resolveReady,
  };

  void listPods(state);

  return {
    namespace,
    synced: () => state.synced,
    ready: () => readyPromise,
    lastContact: () => (state.connected ? now() : state.contactAt),
    get: (name) => state.pods.get(name),
    size: () => state.pods.size,
    stop: () => stopWatching(state),
  };
}

/** One namespace's watch, as plain data shared by the steps below (list, watch, apply, retry). */
interface WatchState {
  readonly options: WatchOptions;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly connectTimeoutMs: number;
  pods: Map<string, PodRecord>;
  /** Where the next watch resumes; empty when it cannot resume and the next start must list. */
  resourceVersion: string;
  synced: boolean;
  /** A watch is open: its data is current now, not only as of `contactAt`. */
  connected: boolean;
  contactAt: number | undefined;
  stopped: boolean;
  /** Consecutive failures: the backoff grows with them. */
  failures: number;
  timer: NodeJS.Timeout | undefined;
  current: { stop(): void } | undefined;
  resolveReady: () => void;
}

/** A watch attempt: its own start time and whether its end has been handled already. */
interface WatchAttempt {
  readonly startedAt: number;
  settled: boolean;
}

function touch(state: WatchState): void {
  const { now } = state.options;
  state.contactAt = now();
}

function scheduleStep(
  state: WatchState,
  step: (state: WatchState) => Promise<void>,
  immediate: boolean,
): void {
  if (state.stopped) return;
  const delay = immediate
    ? 0
    : Math.min(state.retryMaxMs, state.retryBaseMs * 2 ** Math.min(state.failures - 1, 16)) *
      (0.5 + Math.random() / 2);
  state.timer = setTimeout(() => void step(state), delay);
  state.timer.unref();
}

async function listPods(state: WatchState): Promise<void> {
  const { api, namespace, logger } = state.options;
  try {
    state.options.onEvent?.(state.synced ? 'relist' : 'list');
    const result = await api.listPods(namespace);
    const next = new Map<string, PodRecord>();
    for (const item of result.items) {
      const record = podRecord(item);
      if (record) next.set(record.name, record);
    }
    state.pods = next;
    state.resourceVersion = result.resourceVersion;
    state.synced = true;
    touch(state);
    state.resolveReady();
    scheduleStep(state, startWatch, true);
  } catch (error) {
    state.failures += 1;
    state.options.onEvent?.('error');
    logger.warn(
      { namespace, server: api.server, reason: reasonOf(error) },
      'pod list failed; retrying',
    );
    state.resolveReady();
    scheduleStep(state, listPods, false);
  }
}

function applyEvent(state: WatchState, event: WatchEvent): void {
  touch(state);
  const object = event.object as
    { metadata?: { resourceVersion?: unknown }; code?: unknown } | undefined;
  if (event.type === 'ERROR') {
    // The server says the version is gone: the next start must list again.
    if (object?.code === 410) state.resourceVersion = '';
    return;
  }
  const version = object?.metadata?.resourceVersion;
  if (typeof version === 'string' && version) state.resourceVersion = version;
  if (event.type === 'BOOKMARK') return;
  const record = podRecord(event.object);
  if (!record) return;
  if (event.type === 'DELETED') state.pods.delete(record.name);
  else if (event.type === 'ADDED' || event.type === 'MODIFIED') state.pods.set(record.name, record);
}

async function startWatch(state: WatchState): Promise<void> {
  if (state.stopped) return;
  if (!state.resourceVersion) return listPods(state);
  const { api, namespace } = state.options;
  // Backoff reads the monotonic clock: `now` may be a test's frozen clock.
  const attempt: WatchAttempt = { startedAt: performance.now(), settled: false };
  const done = (error?: KubeCallError) => watchEnded(state, attempt, error);
  try {
    state.options.onEvent?.('watch');
    const handle = await withDeadline(
      api.watchPods(namespace, state.resourceVersion, (event) => applyEvent(state, event), done),
      state.connectTimeoutMs,
    );
    if (attempt.settled || state.stopped) return handle.stop();
    state.current = handle;
    state.connected = true;
    touch(state);
  } catch (error) {
    done(error instanceof KubeCallError ? error : new KubeCallError('network', reasonOf(error)));
  }
}

/** Decides what follows the end of a watch: a resume, a new list, or a pause first. */
function watchEnded(state: WatchState, attempt: WatchAttempt, error?: KubeCallError): void {
  if (attempt.settled) return;
  attempt.settled = true;
  if (state.connected) touch(state);
  state.connected = false;
  state.current = undefined;
  if (state.stopped) return;
  const quick = performance.now() - attempt.startedAt < 1000;
  // A watch that lived a while proves the server healthy again.
  if (!quick) state.failures = 0;
  if (error?.kind === 'gone' || !state.resourceVersion) {
    // One list per expiry; a server that expires every watch at once is backed off from.
    state.resourceVersion = '';
    if (error || quick) state.failures += 1;
    return scheduleStep(state, listPods, state.failures === 0);
  }
  if (error) {
    state.failures += 1;
    state.options.onEvent?.('error');
    const { api, namespace, logger } = state.options;
    logger.warn(
      { namespace, server: api.server, reason: error.reason },
      'pod watch failed; resuming after a pause',
    );
    return scheduleStep(state, startWatch, false);
  }
  // A normal end (the server's watch timeout): resume at once, unless it ended right away.
  if (quick) state.failures += 1;
  scheduleStep(state, startWatch, state.failures === 0);
}

function stopWatching(state: WatchState): void {
  state.stopped = true;
  clearTimeout(state.timer);
  state.current?.stop();
  state.connected = false;
  state.resolveReady();
}

function withDeadline<T extends { stop(): void }>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new KubeCallError('timeout', `watch not established within ${ms} ms`));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        // A watch established after we gave up is closed at once.
        if (late) value.stop();
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

function reasonOf(error: unknown): string {
  if (error instanceof KubeCallError) return `${error.kind}: ${error.reason}`;
  return error instanceof Error ? error.name : 'unknown error';
}
