import { afterAll, afterEach, beforeAll } from 'vitest';
import { createMemoryCache, type SharedCache } from '../../src/cache/index.js';
import { clusterSchema, type ClusterConfig, type ConfigInput } from '../../src/config/index.js';
import { createLogger, createMetrics } from '../../src/observability/index.js';
import {
  createClusterVerifier,
  parseToken,
  type ClusterVerifier,
  type WorkloadIdentity,
} from '../../src/verifiers/index.js';
import type { TokenReviewDeps } from '../../src/verifiers/tokenreview.js';
import {
  startKubeApiServer,
  type IssueOptions,
  type KubeApiServer,
  type KubeconfigOptions,
} from './kube-apiserver.js';

/**
 * Shared setup of the TokenReview tests: one API server stand-in per file (or per `describe`,
 * when called inside one), reset to healthy after each test, a cluster entry pointing at it, and
 * a verifier with a log it can read and a clock it can move.
 *
 * @example
 *   const kube = useKubeApiServer();
 *   it('ok/…', async () => {
 *     const { verifier } = reviewVerifier(kube());
 *     await verifier.verify(await issueReviewToken(kube()));
 *   });
 */

/** The broker audience the TokenReview tests ask the API server about. */
export const REVIEW_AUDIENCE = 'sts.example.com';

/** Starts the stand-in before the tests of the enclosing scope, stops it after; returns an accessor. */
export function useKubeApiServer(): () => KubeApiServer {
  let server: KubeApiServer | undefined;
  beforeAll(async () => {
    server = await startKubeApiServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  // A test that takes the server down or slows it must not leak that into the next one.
  afterEach(() => {
    server?.setDown(false);
    server?.setDelay(0);
    server?.setForbidden(false);
    server?.failWith(undefined);
  });
  return () => {
    if (!server)
      throw new Error('the API server stand-in is not started yet (use it inside a test or hook)');
    return server;
  };
}

type ClusterInput = NonNullable<ConfigInput['clusters']>[number];

/** The config entry of cluster `prod`, verified by TokenReview against `server` (as the config file would give it). */
export function reviewClusterInput(
  server: KubeApiServer,
  overrides: Partial<ClusterInput> = {},
  kubeconfig?: KubeconfigOptions,
): ClusterInput {
  return {
    name: 'prod',
    issuer: server.issuer,
    verify: 'tokenreview',
    kubeconfig: server.kubeconfig(kubeconfig),
    ...overrides,
  };
}

/** The same entry after the config schema filled in its defaults. */
export function reviewCluster(
  server: KubeApiServer,
  overrides: Partial<ClusterConfig> = {},
  kubeconfig?: KubeconfigOptions,
): ClusterConfig {
  return clusterSchema.parse(reviewClusterInput(server, overrides, kubeconfig));
}

/** A projected token for pod `orders-1` of production/order-service, for the review audience. */
export function issueReviewToken(
  server: KubeApiServer,
  overrides: Partial<IssueOptions> = {},
): Promise<string> {
  return server.issueToken({
    namespace: 'production',
    serviceAccount: 'order-service',
    pod: 'orders-1',
    audiences: [REVIEW_AUDIENCE],
    ...overrides,
  });
}

export interface ReviewVerifierOptions {
  kubeconfig?: KubeconfigOptions;
  cluster?: Partial<ClusterConfig>;
  deps?: Partial<TokenReviewDeps>;
  cache?: SharedCache;
}

/**
 * A cluster verifier that takes the token as a client sends it: the strict parse the router
 * does, then `verifier`. (Routing by `iss` is the router's, tested in test/unit/verifiers.)
 */
export function withRawTokens(verifier: ClusterVerifier) {
  return {
    verify: async (token: string): Promise<WorkloadIdentity> => verifier.verify(parseToken(token)),
    status: () => verifier.status(),
    close: () => verifier.close(),
  };
}

/**
 * The verifier of cluster `prod` for its `verify` mode (TokenReview unless `options.cluster`
 * says otherwise), as the registry builds it, with captured log lines, metrics and a manual clock.
 */
export function reviewVerifier(server: KubeApiServer, options: ReviewVerifierOptions = {}) {
  let clock = Date.now();
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  const metrics = createMetrics();
  const cluster = reviewCluster(server, options.cluster, options.kubeconfig);
  const cache = options.cache ?? createMemoryCache({ now: () => clock });
  const verifier = createClusterVerifier(cluster, {
    cache,
    logger,
    metrics,
    now: () => clock,
    audiences: options.deps?.audiences ?? [REVIEW_AUDIENCE],
    maxStaleSeconds: 86_400,
    ...(options.deps ? { tokenReview: options.deps } : {}),
  });
  return {
    verifier: withRawTokens(verifier),
    lines,
    metrics,
    cache,
    advance: (ms: number) => void (clock += ms),
  };
}
