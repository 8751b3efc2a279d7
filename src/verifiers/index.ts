export type {
  WorkloadIdentity,
  SubjectTokenVerifier,
  ClusterVerifier,
  ClusterVerifierDeps,
  ClusterStatus,
  KeyFetchFailure,
  RoutedToken,
  TokenReviewLimits,
  VerifyOptions,
} from './types.js';
export {
  createSubjectTokenVerifier,
  parseToken,
  type SubjectTokenVerifierOptions,
} from './subject-token-verifier.js';
export { createClusterVerifier, type ClusterVerifierFactory } from './registry.js';
export { isVerifierReason, type TokenParameter, type VerifierReason } from './refusals.js';
export { decodeUnverified, parseCompactJws } from './compact.js';
export {
  checkJwk,
  ingestJwks,
  ACCEPTED_ALGORITHMS,
  type VerificationKey,
} from './verification-keys.js';
export { verifyCompactJws } from './jws.js';
export { boundedMaxAge } from './jwks-fetch.js';
export { loadClusterKubeConfig } from './tokenreview-client.js';
export { identityFromProjectedToken } from './claims.js';
export { parseStrictJson, StrictJsonError } from './strict-json.js';
