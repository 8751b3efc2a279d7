import {
  ApiException,
  AuthenticationV1Api,
  KubeConfig,
  Observable,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import type { ClusterConfig } from '../config/index.js';

/**
 * The TokenReview call itself, through `@kubernetes/client-node`: one POST per review, bounded
 * by a timeout, every failure turned into a {@link ReviewCallFailure} that carries what an
 * operator needs (HTTP status, Kubernetes reason, network error code) and never the token.
 */

/** `status` of a TokenReview as the API server answered it (not yet trusted: zod checks it). */
export type RawReviewStatus = unknown;

export interface ReviewCallFailure {
  kind: 'timeout' | 'http' | 'network' | 'malformed';
  /** HTTP status from the API server, for `http`. */
  status?: number;
  /** The Kubernetes `Status.reason`, a network error code, or a short description. */
  reason: string;
}

export class ReviewCallError extends Error {
  readonly failure: ReviewCallFailure;

  constructor(failure: ReviewCallFailure) {
    super(
      `tokenreview ${failure.kind}${failure.status ? ` ${failure.status}` : ''}: ${failure.reason}`,
    );
    this.name = 'ReviewCallError';
    this.failure = failure;
  }
}

export interface TokenReviewClient {
  /** Resolves to the review's `status`; rejects with {@link ReviewCallError}. */
  review(token: string, audiences: readonly string[]): Promise<RawReviewStatus>;
  /** The API server URL, for logs. */
  server: string;
}

/**
 * Loads the kubeconfig of `cluster` (a path, or `in-cluster` for the pod's own service account)
 * once, at start-up, so a wrong path fails the broker's start rather than its first request.
 * `caFile`, when set, replaces the kubeconfig's certificate authority.
 */
export function createTokenReviewClient(
  cluster: ClusterConfig,
  options: { timeoutMs: number },
): TokenReviewClient {
  const config = loadClusterKubeConfig(cluster);
  const api = config.makeApiClient(AuthenticationV1Api);
  const server = config.getCurrentCluster()?.server ?? 'unknown';

  return {
    server,
    async review(token, audiences) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), options.timeoutMs);
      try {
        const call = api.createTokenReview(
          {
            body: {
              apiVersion: 'authentication.k8s.io/v1',
              kind: 'TokenReview',
              spec: { token, audiences: [...audiences] },
            },
          },
          { middleware: [abortWith(controller.signal)], middlewareMergeStrategy: 'append' },
        );
        // The race also bounds work before the request is sent (token files, exec plugins).
        const review = await Promise.race([
          call,
          rejectOnAbort(controller.signal, options.timeoutMs),
        ]);
        if (!review || typeof review !== 'object' || review.status === undefined) {
          throw new ReviewCallError({ kind: 'malformed', reason: 'response has no status' });
        }
        return review.status;
      } catch (error) {
        throw classify(error, controller.signal.aborted, options.timeoutMs);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A cluster's kubeconfig: a file, or `in-cluster` (the pod's service account), with the cluster's
 * `caFile` in place of the file's CA. `purpose` names what needs it in the error.
 */
export function loadClusterKubeConfig(
  cluster: ClusterConfig,
  purpose = `verify: ${cluster.verify}`,
): KubeConfig {
  const config = new KubeConfig();
  const source = cluster.kubeconfig;
  if (!source) throw new Error(`cluster ${cluster.name}: kubeconfig is required for ${purpose}`);
  if (source === 'in-cluster' && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new Error(
      `cluster ${cluster.name}: kubeconfig in-cluster, but the broker is not running in a pod (KUBERNETES_SERVICE_HOST is unset)`,
    );
  }
  try {
    if (source === 'in-cluster') config.loadFromCluster();
    else config.loadFromFile(source);
  } catch (error) {
    throw new Error(
      `cluster ${cluster.name}: cannot load kubeconfig ${source}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const current = config.getCurrentCluster();
  if (!current?.server)
    throw new Error(
      `cluster ${cluster.name}: kubeconfig ${source} names no current cluster with a server`,
    );
  if (cluster.caFile) {
    config.loadFromOptions({
      clusters: config
        .getClusters()
        .map((entry) =>
          entry.name === current.name
            ? { ...entry, caData: undefined, caFile: cluster.caFile }
            : entry,
        ),
      users: config.getUsers(),
      contexts: config.getContexts(),
      currentContext: config.getCurrentContext(),
    });
  }
  return config;
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

function rejectOnAbort(signal: AbortSignal, timeoutMs: number): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener(
      'abort',
      () =>
        reject(
          new ReviewCallError({ kind: 'timeout', reason: `no answer within ${timeoutMs} ms` }),
        ),
      {
        once: true,
      },
    );
  });
}

function classify(error: unknown, aborted: boolean, timeoutMs: number): ReviewCallError {
  if (error instanceof ReviewCallError) return error;
  if (aborted)
    return new ReviewCallError({ kind: 'timeout', reason: `no answer within ${timeoutMs} ms` });
  if (error instanceof ApiException) {
    return new ReviewCallError({
      kind: 'http',
      status: error.code,
      reason: statusReason(error.code, error.body),
    });
  }
  // client-node 2 calls fetch(): the socket's error code sits one level down, under `fetch failed`.
  const code = errorCode(error) ?? errorCode((error as { cause?: unknown } | undefined)?.cause);
  if (code !== undefined) return new ReviewCallError({ kind: 'network', reason: code });
  // Anything else (a deserialisation error, a kubeconfig auth plugin failing): the class name is
  // enough for the log and cannot carry the request body.
  return new ReviewCallError({
    kind: 'malformed',
    reason: error instanceof Error ? error.name : 'unknown error',
  });
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** `Forbidden`, `Unauthorized`…: the Kubernetes Status reason, never the raw body. */
function statusReason(code: number, body: unknown): string {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      value = undefined;
    }
  }
  const reason = (value as { reason?: unknown } | undefined)?.reason;
  if (typeof reason === 'string' && /^[A-Za-z]{1,64}$/.test(reason)) return reason;
  return code === 401 ? 'Unauthorized' : `HTTP ${code}`;
}
