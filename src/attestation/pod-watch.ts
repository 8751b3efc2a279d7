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
  const { api, namespace, now, logger } = options;
  const retryBase = options.retryBaseMs ?? 500;
  const retryMax = options.retryMaxMs ?? 30_000;
  const connectTimeout = options.connectTimeoutMs ?? 10_000;
  let pods = new Map<string, PodRecord>();
  let resourceVersion = '';
  let isSynced = false;
  let connected = false;
  let contactAt: number | undefined;
  let stopped = false;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let current: { stop(): void } | undefined;
  let resolveReady: () => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (resolveReady = resolve));

  const touch = () => void (contactAt = now());

  const schedule = (action: () => Promise<void>, immediate: boolean) => {
    if (stopped) return;
    const delay = immediate
      ? 0
      : Math.min(retryMax, retryBase * 2 ** Math.min(failures - 1, 16)) * (0.5 + Math.random() / 2);
    timer = setTimeout(() => void action(), delay);
    timer.unref();
  };

  async function list(): Promise<void> {
    try {
      options.onEvent?.(isSynced ? 'relist' : 'list');
      const result = await api.listPods(namespace);
      const next = new Map<string, PodRecord>();
      for (const item of result.items) {
        const record = podRecord(item);
        if (record) next.set(record.name, record);
      }
      pods = next;
      resourceVersion = result.resourceVersion;
      isSynced = true;
      touch();
      resolveReady();
      schedule(watch, true);
    } catch (error) {
      failures += 1;
      options.onEvent?.('error');
      logger.warn(
        { namespace, server: api.server, reason: reasonOf(error) },
        'pod list failed; retrying',
      );
      resolveReady();
      schedule(list, false);
    }
  }

  function onEvent(event: WatchEvent): void {
    touch();
    const object = event.object as
      { metadata?: { resourceVersion?: unknown }; code?: unknown } | undefined;
    if (event.type === 'ERROR') {
      // The server says the version is gone: the next start must list again.
      if (object?.code === 410) resourceVersion = '';
      return;
    }
    const version = object?.metadata?.resourceVersion;
    if (typeof version === 'string' && version) resourceVersion = version;
    if (event.type === 'BOOKMARK') return;
    const record = podRecord(event.object);
    if (!record) return;
    if (event.type === 'DELETED') pods.delete(record.name);
    else if (event.type === 'ADDED' || event.type === 'MODIFIED') pods.set(record.name, record);
  }

  async function watch(): Promise<void> {
    if (stopped) return;
    if (!resourceVersion) return list();
    // Backoff reads the monotonic clock: `now` may be a test's frozen clock.
    const startedAt = performance.now();
    let settled = false;
    const done = (error?: KubeCallError) => {
      if (settled) return;
      settled = true;
      if (connected) touch();
      connected = false;
      current = undefined;
      if (stopped) return;
      const quick = performance.now() - startedAt < 1000;
      // A watch that lived a while proves the server healthy again.
      if (!quick) failures = 0;
      if (error?.kind === 'gone' || !resourceVersion) {
        // One list per expiry; a server that expires every watch at once is backed off from.
        resourceVersion = '';
        if (error || quick) failures += 1;
        return schedule(list, failures === 0);
      }
      if (error) {
        failures += 1;
        options.onEvent?.('error');
        logger.warn(
          { namespace, server: api.server, reason: error.reason },
          'pod watch failed; resuming after a pause',
        );
        return schedule(watch, false);
      }
      // A normal end (the server's watch timeout): resume at once, unless it ended right away.
      if (quick) failures += 1;
      schedule(watch, failures === 0);
    };
    try {
      options.onEvent?.('watch');
      const handle = await withDeadline(
        api.watchPods(namespace, resourceVersion, onEvent, done),
        connectTimeout,
      );
      if (settled || stopped) return handle.stop();
      current = handle;
      connected = true;
      touch();
    } catch (error) {
      done(error instanceof KubeCallError ? error : new KubeCallError('network', reasonOf(error)));
    }
  }

  void list();

  return {
    namespace,
    synced: () => isSynced,
    ready: () => readyPromise,
    lastContact: () => (connected ? now() : contactAt),
    get: (name) => pods.get(name),
    size: () => pods.size,
    stop() {
      stopped = true;
      clearTimeout(timer);
      current?.stop();
      connected = false;
      resolveReady();
    },
  };
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
