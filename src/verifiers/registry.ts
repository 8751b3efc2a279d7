import type { ClusterConfig } from '../config/index.js';
import { createJwksVerifier } from './jwks.js';
import { createJwksThenTokenReviewVerifier } from './jwks-then-tokenreview.js';
import { createTokenReviewVerifier } from './tokenreview.js';
import type { ClusterVerifier, ClusterVerifierDeps } from './types.js';

export type ClusterVerifierFactory = (
  cluster: ClusterConfig,
  deps: ClusterVerifierDeps,
) => ClusterVerifier;

/** One entry per `verify` mode of a cluster (docs/clusters.md); a new mode is one more entry. */
const CLUSTER_VERIFIERS: Record<ClusterConfig['verify'], ClusterVerifierFactory> = {
  jwks: createJwksVerifier,
  tokenreview: (cluster, deps) =>
    createTokenReviewVerifier(cluster, { ...deps, ...deps.tokenReview }),
  'jwks+tokenreview': createJwksThenTokenReviewVerifier,
};

/**
 * The verifier of one cluster, for its `verify` mode.
 *
 * @example const verifier = createClusterVerifier(cluster, { cache, logger, now: Date.now, audiences: ['sts.example.com'], maxStaleSeconds: 86_400 });
 */
export function createClusterVerifier(
  cluster: ClusterConfig,
  deps: ClusterVerifierDeps,
): ClusterVerifier {
  return CLUSTER_VERIFIERS[cluster.verify](cluster, deps);
}
