import { invalidRequest, temporarilyUnavailable } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { KubeCallError, type KubeApi } from './kube.js';
import { createLookupCache } from './lookup-cache.js';
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
  const { api, now, cluster } = options;
  const maxNamespaces = options.maxNamespaces ?? 256;
  const syncWaitMs = options.syncWaitMs ?? 5_000;
  const watches = new Map<string, NamespaceWatch>();
  const confirmed = createLookupCache<Confirmed>({ ttlMs: CONFIRM_TTL_MS, max: 10_000, now });
  const owners = createLookupCache<string>({ ttlMs: MAX_STALENESS_MS, max: 10_000, now });
  const nodes = createLookupCache<Record<string, string> | undefined>({
    ttlMs: MAX_STALENESS_MS,
    max: 10_000,
    now,
  });
  const unavailable = (what: string, cause?: unknown) =>
    temporarilyUnavailable(
      'the cluster API server cannot be reached to attest the pod; retry later',
      { reason: 'pod_lookup_unavailable', detail: { cluster, what }, cause },
    );

  function watchFor(namespace: string): NamespaceWatch {
    let watch = watches.get(namespace);
    if (watch) {
      watches.delete(namespace);
      watches.set(namespace, watch);
      return watch;
    }
    watch = watchNamespace({
      api,
      namespace,
      now,
      logger: options.logger.child({ cluster }),
      ...options.watch,
    });
    watches.set(namespace, watch);
    if (watches.size > maxNamespaces) {
      const [oldest, evicted] = watches.entries().next().value as [string, NamespaceWatch];
      watches.delete(oldest);
      evicted.stop();
    }
    return watch;
  }

  const fresh = (watch: NamespaceWatch) => {
    const contact = watch.lastContact();
    return watch.synced() && contact !== undefined && now() - contact <= MAX_STALENESS_MS;
  };

  async function confirm(namespace: string, name: string): Promise<Confirmed> {
    return confirmed.get(`${namespace}/${name}`, async () => {
      try {
        const object = await api.getPod(namespace, name);
        options.onApiCall?.('get-pod', 'ok');
        const record = podRecord(object);
        return record ? { found: true, record } : { found: false };
      } catch (error) {
        if (error instanceof KubeCallError && error.kind === 'not-found') {
          options.onApiCall?.('get-pod', 'ok');
          return { found: false };
        }
        options.onApiCall?.('get-pod', 'error');
        throw error;
      }
    });
  }

  return {
    async lookup(namespace, name, uid) {
      const watch = watchFor(namespace);
      if (!watch.synced())
        await Promise.race([
          watch.ready(),
          new Promise((resolve) => setTimeout(resolve, syncWaitMs).unref()),
        ]);
      const cached = fresh(watch) ? watch.get(name) : undefined;
      if (cached && cached.uid === uid && cached.complete) return cached;
      let answer: Confirmed;
      try {
        answer = await confirm(namespace, name);
      } catch (error) {
        // The watch's copy is still within its bounded age: an incomplete record beats no answer.
        if (cached && cached.uid === uid) return cached;
        throw unavailable('pod', error);
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
    },
    async owner(pod) {
      try {
        const owner = await resolveOwner(api, owners, pod);
        return owner;
      } catch (error) {
        options.onApiCall?.('owner', 'error');
        throw unavailable('owner', error);
      }
    },
    async nodeLabels(pod) {
      const nodeName = pod.nodeName;
      if (!nodeName) return undefined;
      try {
        return await nodes.get(nodeName, async () => {
          try {
            return stringMap(await api.getNodeLabels(nodeName));
          } catch (error) {
            if (error instanceof KubeCallError && error.kind === 'not-found') return undefined;
            throw error;
          }
        });
      } catch (error) {
        options.onApiCall?.('node', 'error');
        throw unavailable('node', error);
      }
    },
    namespaces: () => [...watches.keys()],
    close() {
      for (const watch of watches.values()) watch.stop();
      watches.clear();
    },
  };
}
