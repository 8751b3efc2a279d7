import type { PodFacts } from '../attestation/index.js';

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

/** Verifies a subject token against the cluster that issued it. */
export interface SubjectTokenVerifier {
  /**
   * Resolves to the workload identity, or rejects with a `TesseraError`:
   * `invalid_request` (400) for any bad token, `temporarily_unavailable` (503) when the
   * issuer's keys or the API server cannot be reached and nothing usable is cached.
   */
  verify(token: string): Promise<WorkloadIdentity>;
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
