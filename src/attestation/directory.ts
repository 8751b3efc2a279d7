import { invalidRequest, temporarilyUnavailable, type TesseraError } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { KubeCallError, type KubeApi } from './kube.js';
import { createLookupCache, type LookupCache } from './lookup-cache.js';
import { resolveOwner } from './owners.js';
import { podRecord, stringMap } from './pod-record.js';
import { watchNamespace, type NamespaceWatch, type WatchOptions } from './pod-watch.js';
import { MAX_STALENESS_MS, type PodRecord } from './types.js';

/**
 * One cluster's view of its pods: a watch per namespace, opened when a token from that namespace
 * first arrives (at most `maxNamespaces`, least recently used closed first), plus small caches of
 * owners and node labels. A pod the watch does not (yet) show as the token names it is read once
 * with a GET; the answer is remembered briefly so a deleted pod's token cannot turn every exchange
 * into an API call.
 */
export interface PodDirectory {
  /** The pod with `uid`, or a TesseraError: 400 when it is gone or replaced, 503 when the cluster cannot answer. */
  lookup(namespace: string, name: string, uid: string): Promise<PodRecord>;
  owner(pod: PodRecord): Promise<string>;
  nodeLabels(pod: PodRecord): Promise<Record<string, string> | undefined>;
  /** Open watches, for tests and status. */
  namespaces(): string[];
  close(): void;
}

export interface DirectoryOptions {
  cluster: string;
  api: KubeApi;
  now: () => number;
  logger: Logger;
  maxNamespaces?: number;
  /** How long the first list of a namespace may take before a GET answers instead. */
  syncWaitMs?: number;
  watch?: Pick<WatchOptions, 'retryBaseMs' | 'retryMaxMs' | 'connectTimeoutMs' | 'onEvent'>;
  onApiCall?: (kind: 'get-pod' | 'owner' | 'node', result: 'ok' | 'error') => void;
}

/** A GET's answer is reused this long: long enough to absorb a retry storm, short enough to see a new pod. */
const CONFIRM_TTL_MS = 2_000;

type Confirmed = { found: true; record: PodRecord } | { found: false };

export function createPodDirectory(options: DirectoryOptions): PodDirectory {
  const { now } = options;
  const state: DirectoryState = {
    options,
    maxNamespaces: options.maxNamespaces ?? 256,
    syncWaitMs: options.syncWaitMs ?? 5_000,
    watches: new Map(),
    confirmed: createLookupCache<Confirmed>({ ttlMs: CONFIRM_TTL_MS, max: 10_000, now }),
    owners: createLookupCache<string>({ ttlMs: MAX_STALENESS_MS, max: 10_000, now }),
    nodes: createLookupCache<Record<string, string> | undefined>({
      ttlMs: MAX_STALENESS_MS,
      max: 10_000,
      now,
    }),
  };
  return {
    lookup: (namespace, name, uid) => lookupPod(state, namespace, name, uid),
    owner: (pod) => ownerOf(state, pod),
    nodeLabels: (pod) => nodeLabelsOf(state, pod),
    namespaces: () => [...state.watches.keys()],
    close: () => closeWatches(state),
  };
}

/** One cluster's directory, as plain data shared by the lookups and the watch bookkeeping below. */
interface DirectoryState {
  readonly options: DirectoryOptions;
  readonly maxNamespaces: number;
  readonly syncWaitMs: number;
  /** Open watches, least recently used first. */
  readonly watches: Map<string, NamespaceWatch>;
  readonly confirmed: LookupCache<Confirmed>;
  readonly owners: LookupCache<string>;
  readonly nodes: LookupCache<Record<string, string> | undefined>;
}

async function lookupPod(
  state: DirectoryState,
  namespace: string,
  name: string,
  uid: string,
): Promise<PodRecord> {
  const { cluster } = state.options;
  const watch = watchFor(state, namespace);
  if (!watch.synced()) await firstListOrTimeout(watch, state.syncWaitMs);
  const cached = isFresh(watch, state.options.now) ? watch.get(name) : undefined;
  if (cached && cached.uid === uid && cached.complete) return cached;
  let answer: Confirmed;
  try {
    answer = await confirm(state, namespace, name);
  } catch (error) {
    // The watch's copy is still within its bounded age: an incomplete record beats no answer.
    if (cached && cached.uid === uid) return cached;
    throw unavailable(cluster, 'pod', error);
  }
  if (!answer.found)
    throw invalidRequest('the pod named by subject_token does not exist', {
      reason: 'pod_not_found',
      detail: { cluster, namespace, pod: name },
    });
  if (answer.record.uid !== uid) {
    throw invalidRequest('the pod named by subject_token was replaced (its uid differs)', {
      reason: 'pod_replaced',
      detail: { cluster, namespace, pod: name },
    });
  }
  return answer.record;
}

/** The namespace's watch, opened on first use; opening one past `maxNamespaces` closes the least recently used. */
function watchFor(state: DirectoryState, namespace: string): NamespaceWatch {
  const { watches, options } = state;
  let watch = watches.get(namespace);
  if (watch) {
    watches.delete(namespace);
    watches.set(namespace, watch);
    return watch;
  }
  watch = watchNamespace({
    api: options.api,
    namespace,
    now: options.now,
    logger: options.logger.child({ cluster: options.cluster }),
    ...options.watch,
  });
  watches.set(namespace, watch);
  if (watches.size > state.maxNamespaces) {
    const [oldest, evicted] = watches.entries().next().value as [string, NamespaceWatch];
    watches.delete(oldest);
    evicted.stop();
  }
  return watch;
}

/** A slow first list is waited for only so long: past that, a GET answers instead. */
function firstListOrTimeout(watch: NamespaceWatch, syncWaitMs: number): Promise<unknown> {
  return Promise.race([
    watch.ready(),
    new Promise((resolve) => setTimeout(resolve, syncWaitMs).unref()),
  ]);
}

function isFresh(watch: NamespaceWatch, now: () => number): boolean {
  const contact = watch.lastContact();
  return watch.synced() && contact !== undefined && now() - contact <= MAX_STALENESS_MS;
}

async function confirm(state: DirectoryState, namespace: string, name: string): Promise<Confirmed> {
  const { api } = state.options;
  return state.confirmed.get(`${namespace}/${name}`, async () => {
    try {
      const object = await api.getPod(namespace, name);
      state.options.onApiCall?.('get-pod', 'ok');
      const record = podRecord(object);
      return record ? { found: true, record } : { found: false };
    } catch (error) {
      if (error instanceof KubeCallError && error.kind === 'not-found') {
        state.options.onApiCall?.('get-pod', 'ok');
        return { found: false };
      }
      state.options.onApiCall?.('get-pod', 'error');
      throw error;
    }
  });
}

async function ownerOf(state: DirectoryState, pod: PodRecord): Promise<string> {
  try {
    return await resolveOwner(state.options.api, state.owners, pod);
  } catch (error) {
    state.options.onApiCall?.('owner', 'error');
    throw unavailable(state.options.cluster, 'owner', error);
  }
}

async function nodeLabelsOf(
  state: DirectoryState,
  pod: PodRecord,
): Promise<Record<string, string> | undefined> {
  const { api } = state.options;
  const nodeName = pod.nodeName;
  if (!nodeName) return undefined;
  try {
    return await state.nodes.get(nodeName, async () => {
      try {
        return stringMap(await api.getNodeLabels(nodeName));
      } catch (error) {
        if (error instanceof KubeCallError && error.kind === 'not-found') return undefined;
        throw error;
      }
    });
  } catch (error) {
    state.options.onApiCall?.('node', 'error');
    throw unavailable(state.options.cluster, 'node', error);
  }
}

function closeWatches(state: DirectoryState): void {
  for (const watch of state.watches.values()) watch.stop();
  state.watches.clear();
}

function unavailable(cluster: string, what: string, cause?: unknown): TesseraError {
  return temporarilyUnavailable(
    'the cluster API server cannot be reached to attest the pod; retry later',
    { reason: 'pod_lookup_unavailable', detail: { cluster, what }, cause },
  );
}
