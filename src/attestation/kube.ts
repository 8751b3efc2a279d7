import type { KubeConfig } from '@kubernetes/client-node';
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  Observable,
  Watch,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import type { ClusterConfig } from '../config/index.js';
import { loadClusterKubeConfig } from '../verifiers/index.js';

/**
 * The cluster API calls pod attestation makes, through `@kubernetes/client-node`: every call
 * bounded by a timeout, every failure a {@link KubeCallError} with an HTTP status or a network
 * code (never a response body), so callers tell "not found" from "cannot answer".
 */

export class KubeCallError extends Error {
  readonly kind: 'not-found' | 'gone' | 'http' | 'network' | 'timeout';
  readonly reason: string;
  constructor(kind: KubeCallError['kind'], reason: string) {
    super(`${kind}: ${reason}`);
    this.name = 'KubeCallError';
    this.kind = kind;
    this.reason = reason;
  }
}

export interface PodList {
  items: unknown[];
  resourceVersion: string;
}

export interface WatchEvent {
  type: string;
  object: unknown;
}

export interface KubeApi {
  server: string;
  listPods(namespace: string): Promise<PodList>;
  /** Opens a watch; resolves once it is established (or rejects). `done` fires once when it ends. */
  watchPods(
    namespace: string,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    done: (error?: KubeCallError) => void,
  ): Promise<{ stop(): void }>;
  getPod(namespace: string, name: string): Promise<unknown>;
  /** `metadata` of a ReplicaSet or Job. */
  getOwnerMetadata(kind: 'ReplicaSet' | 'Job', namespace: string, name: string): Promise<unknown>;
  getNodeLabels(name: string): Promise<unknown>;
}

const LIST_PAGE = 500;
/** A namespace with more pods than this is not cached (its pods are read one GET at a time). */
const MAX_PODS_PER_NAMESPACE = 20_000;

/** The cluster's kubeconfig (a file or in-cluster), as TokenReview reads it. */
export const loadKubeConfig = (cluster: ClusterConfig): KubeConfig =>
  loadClusterKubeConfig(cluster, 'podAttestation');

export function createKubeApi(config: KubeConfig, options: { timeoutMs: number }): KubeApi {
  const core = config.makeApiClient(CoreV1Api);
  const apps = config.makeApiClient(AppsV1Api);
  const batch = config.makeApiClient(BatchV1Api);
  const watcher = new Watch(config);
  const bounded = <T>(
    call: (options: {
      middleware: ObservableMiddleware[];
      middlewareMergeStrategy: 'append';
    }) => Promise<T>,
  ) =>
    withTimeout(options.timeoutMs, (signal) =>
      call({ middleware: [abortWith(signal)], middlewareMergeStrategy: 'append' }),
    );

  return {
    server: config.getCurrentCluster()?.server ?? 'unknown',
    async listPods(namespace) {
      const items: unknown[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await bounded((o) =>
          core.listNamespacedPod(
            { namespace, limit: LIST_PAGE, ...(cont ? { _continue: cont } : {}) },
            o,
          ),
        );
        items.push(...page.items);
        if (items.length > MAX_PODS_PER_NAMESPACE)
          throw new KubeCallError(
            'http',
            `more than ${MAX_PODS_PER_NAMESPACE} pods in the namespace`,
          );
        cont = page.metadata?._continue || undefined;
        resourceVersion = page.metadata?.resourceVersion ?? '';
      } while (cont);
      return { items, resourceVersion };
    },
    async watchPods(namespace, resourceVersion, onEvent, done) {
      let ended = false;
      const finish = (error: unknown) => {
        if (ended) return;
        ended = true;
        done(error ? classify(error, false, options.timeoutMs) : undefined);
      };
      const controller = await watcher.watch(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
        { resourceVersion, allowWatchBookmarks: true },
        (type: string, object: unknown) => onEvent({ type, object }),
        finish,
      );
      return { stop: () => controller.abort() };
    },
    getPod: (namespace, name) => bounded((o) => core.readNamespacedPod({ namespace, name }, o)),
    async getOwnerMetadata(kind, namespace, name) {
      const object =
        kind === 'ReplicaSet'
          ? await bounded((o) => apps.readNamespacedReplicaSet({ namespace, name }, o))
          : await bounded((o) => batch.readNamespacedJob({ namespace, name }, o));
      return object.metadata;
    },
    async getNodeLabels(name) {
      const node = await bounded((o) => core.readNode({ name }, o));
      return node.metadata?.labels;
    },
  };
}

async function withTimeout<T>(
  timeoutMs: number,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new KubeCallError('timeout', `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([call(controller.signal), timeout]);
  } catch (error) {
    throw classify(error, controller.signal.aborted, timeoutMs);
  } finally {
    clearTimeout(timer);
  }
}

function abortWith(signal: AbortSignal): ObservableMiddleware {
  return {
    pre(context) {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (context) => new Observable(Promise.resolve(context)),
  };
}

function classify(error: unknown, aborted: boolean, timeoutMs: number): KubeCallError {
  if (error instanceof KubeCallError) return error;
  if (aborted) return new KubeCallError('timeout', `no answer within ${timeoutMs} ms`);
  const status =
    error instanceof ApiException
      ? error.code
      : (error as { statusCode?: unknown } | undefined)?.statusCode;
  if (typeof status === 'number') {
    if (status === 404) return new KubeCallError('not-found', 'HTTP 404');
    if (status === 410) return new KubeCallError('gone', 'HTTP 410');
    return new KubeCallError('http', `HTTP ${status}`);
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return new KubeCallError('network', code);
  return new KubeCallError('network', error instanceof Error ? error.name : 'unknown error');
}
