import type { PodFacts } from '../attestation/index.js';
import type { SharedCache } from '../cache/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import type { CompactJws } from './compact.js';
import type { TokenParameter } from './refusals.js';
import type { AcceptedAlgorithm } from './verification-keys.js';

/**
 * What every verifier returns: the identity of the workload behind a subject token,
 * independent of how it was verified (JWKS or TokenReview).
 */
export interface WorkloadIdentity {
  /** Name of the configured cluster whose issuer matched `iss`. */
  cluster: string;
  iss: string;
  sub: string;
  aud: string[];
  namespace?: string;
  serviceAccount?: { name: string; uid?: string };
  pod?: { name: string; uid?: string };
  node?: { name: string; uid?: string };
  /** The token's full claim set (for TokenReview-only clusters, the unverified payload). */
  claims: Record<string, unknown>;
  /** `exp` of the subject token, seconds since the epoch. */
  expiresAt?: number;
  /** `jti` of the subject token, when present (for logs). */
  jti?: string;
  verifiedBy: 'jwks' | 'tokenreview' | 'jwks+tokenreview';
  /** What the cluster API says of the token's pod, for clusters with `podAttestation` (set after verification). */
  attestation?: PodFacts;
}

/** A token already through the strict parse and header checks, routed to one cluster by its exact `iss`. */
export interface RoutedToken {
  /** The parsed compact JWS; `jws.token` is the token exactly as received. */
  jws: CompactJws;
  alg: AcceptedAlgorithm;
  claims: Record<string, unknown>;
}

/**
 * One cluster's verification, whatever its `verify` mode: the shape every entry of the
 * registry (`registry.ts`) builds. Stages compose: `jwks+tokenreview` is the JWKS verifier,
 * then the TokenReview verifier.
 */
export interface ClusterVerifier {
  /**
   * Resolves to the workload identity, or rejects with a `TesseraError` carrying a verifier
   * `reason` (`refusals.ts`): `invalid_request` (400) for a bad token, `temporarily_unavailable`
   * (503) when the cluster's keys or API server cannot answer.
   */
  verify(token: RoutedToken): Promise<WorkloadIdentity>;
  /** Loads what verification needs ahead of the first token; never rejects (failures show in status()). */
  warm(): Promise<void>;
  /** Readiness detail, for `/readyz` and metrics. */
  status(): ClusterStatus;
  close(): Promise<void>;
}

/** What every cluster verifier is built with (`registry.ts`); each takes what its mode needs. */
export interface ClusterVerifierDeps {
  /** Shares fetched keys and review answers between replicas. */
  cache: SharedCache;
  logger: Logger;
  metrics?: Metrics;
  /** Milliseconds since the epoch; tests freeze it. */
  now: () => number;
  /** `aud` must name one of these (the cluster's `audiences`, else the broker's audience). */
  audiences: readonly string[];
  /** How long the last good keys of an unreachable issuer stay usable past their freshness. */
  maxStaleSeconds: number;
  /** TokenReview limits (the defaults fit production; tests shorten them). */
  tokenReview?: TokenReviewLimits;
}

export interface TokenReviewLimits {
  /** How long a positive review is reused, capped by the token's remaining life. */
  positiveTtlSeconds?: number;
  /** Budget for one TokenReview call. */
  timeoutMs?: number;
  /** Reviews of distinct tokens in flight at once for this cluster; beyond it, 503 at once. */
  maxConcurrentReviews?: number;
  /** How long a refusal by the API server is reused for the same token. */
  refusalTtlSeconds?: number;
}

export interface VerifyOptions {
  /**
   * The request parameter the token came in (default `subject_token`): refusals are worded
   * for it and say it in `detail.token`.
   */
  parameter?: TokenParameter;
}

/** Verifies a token against the cluster that issued it (exact `iss`), for every configured cluster. */
export interface SubjectTokenVerifier {
  /**
   * Resolves to the workload identity, or rejects with a `TesseraError`:
   * `invalid_request` (400) for any bad token, `temporarily_unavailable` (503) when the
   * issuer's keys or the API server cannot be reached and nothing usable is cached.
   */
  verify(token: string, options?: VerifyOptions): Promise<WorkloadIdentity>;
  /** Fetches every cluster's keys ahead of the first token; never rejects (failures show in status()). */
  warm(): Promise<void>;
  /** Readiness detail per cluster, for `/readyz` and metrics. */
  status(): ClusterStatus[];
  close(): Promise<void>;
}

export interface ClusterStatus {
  cluster: string;
  issuer: string;
  /** Keys usable (fresh or within maxStale). */
  ready: boolean;
  /** Serving keys past their refresh time because the issuer is unreachable. */
  stale: boolean;
  lastRefreshAt?: number;
  /** When the keys in use were fetched from the issuer, by this replica or another (ms since the epoch). */
  keysFetchedAt?: number;
  /**
   * Why the last refresh failed, as a coarse stable code: `/readyz` is unauthenticated, so file
   * paths, URLs and document content stay in the log (`jwks refresh failed`).
   */
  lastError?: KeyFetchFailure;
}

/** Why a discovery or JWKS fetch failed. */
export type KeyFetchFailure =
  | 'unreachable'
  | 'tls'
  | 'timeout'
  | 'http-error'
  | 'too-large'
  | 'redirect'
  | 'insecure-url'
  | 'bad-discovery'
  | 'bad-jwks'
  | 'ca-file'
  | 'unknown';
