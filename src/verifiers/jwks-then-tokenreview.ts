import type { ClusterConfig } from '../config/index.js';
import { createJwksVerifier } from './jwks.js';
import { refuse } from './refusals.js';
import { createTokenReviewVerifier } from './tokenreview.js';
import type { ClusterVerifier, ClusterVerifierDeps } from './types.js';

/** Where the review exists to notice a deleted pod or a revoked token, a positive answer is reused briefly. */
const REVIEW_POSITIVE_TTL_SECONDS = 10;

/**
 * `verify: jwks+tokenreview`: the JWKS verifier, then the TokenReview verifier. The signature
 * and claims are checked locally first, so a forged token costs no API-server call; the review
 * then tells whether the pod the token is bound to still exists.
 */
export function createJwksThenTokenReviewVerifier(
  cluster: ClusterConfig,
  deps: ClusterVerifierDeps,
): ClusterVerifier {
  const review = createTokenReviewVerifier(cluster, {
    ...deps,
    ...deps.tokenReview,
    positiveTtlSeconds: deps.tokenReview?.positiveTtlSeconds ?? REVIEW_POSITIVE_TTL_SECONDS,
  });
  return composeJwksThenTokenReview(cluster, createJwksVerifier(cluster, deps), review);
}

/** The composition itself: the JWKS identity, once the review vouched for the same subject. */
export function composeJwksThenTokenReview(
  cluster: ClusterConfig,
  jwks: ClusterVerifier,
  review: ClusterVerifier,
): ClusterVerifier {
  return {
    async verify(token) {
      const identity = await jwks.verify(token);
      const reviewed = await review.verify(token);
      if (reviewed.sub !== identity.sub) {
        throw refuse('review_subject_mismatch', {
          cluster: cluster.name,
          sub: identity.sub,
          reviewed: reviewed.sub,
        });
      }
      return { ...identity, verifiedBy: 'jwks+tokenreview' };
    },
    async warm() {
      await Promise.all([jwks.warm(), review.warm()]);
    },
    // Readiness is the keys': the API server is asked per token, and its trouble is a 503 then.
    status: () => jwks.status(),
    async close() {
      await Promise.all([jwks.close(), review.close()]);
    },
  };
}
