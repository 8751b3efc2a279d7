import type { SharedCache } from '../cache/index.js';
import type { ClusterConfig } from '../config/index.js';
import { invalidRequest, isTesseraError, temporarilyUnavailable } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import { parseClaims, parseCompactJws } from './compact.js';
import { checkHeader } from './jws.js';
import { createJwksVerifier, type ClusterJwksVerifier, type RoutedToken } from './jwks.js';
import { createTokenReviewVerifier } from './tokenreview.js';
import type { ClusterStatus, SubjectTokenVerifier, WorkloadIdentity } from './types.js';

export type { WorkloadIdentity, SubjectTokenVerifier, ClusterStatus, KeyFetchFailure } from './types.js';
export { decodeUnverified, parseCompactJws, MAX_TOKEN_BYTES } from './compact.js';
export { checkJwk, ingestJwks, ACCEPTED_ALGORITHMS, type VerificationKey } from './keys.js';
export { verifyCompactJws } from './jws.js';
export { boundedMaxAge } from './jwks-fetch.js';
export { loadClusterKubeConfig } from './tokenreview-client.js';
export { LEEWAY_SECONDS, identityFromClaims } from './claims.js';
export { parseStrictJson, StrictJsonError } from './strict-json.js';

export interface SubjectTokenVerifierOptions {
  clusters: ClusterConfig[];
  /** The broker's audience; a cluster's own `audiences` list replaces it. */
  audience: string;
  cache: SharedCache;
  logger: Logger;
  metrics?: Metrics;
  /** Milliseconds clock; tests freeze it. */
  now?: () => number;
  /** How long the last good keys of an unreachable issuer stay usable past their freshness. */
  maxStaleSeconds?: number;
}

type ClusterVerify = (token: RoutedToken, raw: string) => Promise<WorkloadIdentity>;

interface Route {
  cluster: ClusterConfig;
  verify: ClusterVerify;
  warm(): Promise<void>;
  status(): ClusterStatus;
  close(): Promise<void>;
}

/**
 * The subject-token verifier: strict compact-JWS checks, then routing by the token's `iss`
 * (exact string match against the configured clusters, never a prefix), then the cluster's
 * verify mode — `jwks`, `tokenreview`, or `jwks+tokenreview` (locally first, then the API server).
 * Every refusal is a `TesseraError`: `invalid_request` for a bad token, `temporarily_unavailable`
 * when the cluster's keys or API server cannot be reached, or when anything unexpected fails.
 *
 * @example
 *   const verifier = createSubjectTokenVerifier({ clusters: config.clusters, audience: config.audience, cache, logger });
 *   const identity = await verifier.verify(subjectToken);
 */
export function createSubjectTokenVerifier(options: SubjectTokenVerifierOptions): SubjectTokenVerifier {
  const now = options.now ?? Date.now;
  const routes = new Map<string, Route>(options.clusters.map((cluster) => [cluster.issuer, createRoute(cluster, options, now)]));

  const verify = async (token: string): Promise<WorkloadIdentity> => {
    const jws = parseCompactJws(token);
    const alg = checkHeader(jws.header);
    const claims = parseClaims(jws.payload);
    const route = typeof claims.iss === 'string' ? routes.get(claims.iss) : undefined;
    if (!route) {
      throw invalidRequest('subject_token issuer is not trusted', {
        detail: { reason: 'no cluster has this issuer', iss: typeof claims.iss === 'string' ? claims.iss.slice(0, 256) : typeof claims.iss },
      });
    }
    return route.verify({ jws, alg, claims }, token);
  };

  return {
    async verify(token) {
      try {
        return await verify(token);
      } catch (error) {
        if (isTesseraError(error)) throw error;
        // Not the client's fault: our bug or an infrastructure fault. A 503 says "retry" where a
        // 400 would say "this token is bad"; the description stays generic, the log keeps it.
        options.logger.error({ err: error }, 'unexpected error while verifying a subject token');
        throw temporarilyUnavailable('subject_token cannot be verified right now; retry later', { cause: error });
      }
    },
    async warm() {
      await Promise.all([...routes.values()].map((route) => route.warm()));
    },
    status: () => [...routes.values()].map((route) => route.status()),
    async close() {
      await Promise.all([...routes.values()].map((route) => route.close()));
    },
  };
}

function createRoute(cluster: ClusterConfig, options: SubjectTokenVerifierOptions, now: () => number): Route {
  const audiences = cluster.audiences ?? [options.audience];
  // Whenever allowed, not only for an http issuer: an https issuer's discovery may name an http jwks_uri.
  if (cluster.allowInsecure) {
    options.logger.warn({ cluster: cluster.name, issuer: cluster.issuer }, 'cluster keys may be fetched over plain http (allowInsecure): development only');
  }
  const shared = { cache: options.cache, logger: options.logger, ...(options.metrics ? { metrics: options.metrics } : {}), now };
  const jwks: ClusterJwksVerifier | undefined =
    cluster.verify === 'tokenreview'
      ? undefined
      : createJwksVerifier(cluster, {
          ...shared,
          audiences,
          maxStaleSeconds: options.maxStaleSeconds ?? 86_400,
        });
  const review = cluster.verify === 'jwks' ? undefined : createTokenReviewVerifier(cluster, { ...shared, audiences });

  const verify: ClusterVerify = async (token, raw) => {
    // The router already parsed the token strictly: the review reuses its claims.
    if (!jwks) return (review as NonNullable<typeof review>).verify(raw, token);
    const identity = await jwks.verify(token);
    if (!review) return identity;
    const reviewed = await review.verify(raw, token);
    if (reviewed.sub !== identity.sub) {
      throw invalidRequest('subject_token could not be verified', {
        detail: { cluster: cluster.name, reason: 'TokenReview user differs from the token sub', sub: identity.sub, reviewed: reviewed.sub },
      });
    }
    return { ...identity, verifiedBy: 'jwks+tokenreview' };
  };

  return {
    cluster,
    verify,
    warm: async () => jwks?.warm(),
    status: () => jwks?.status() ?? { cluster: cluster.name, issuer: cluster.issuer, ready: true, stale: false },
    async close() {
      await Promise.all([jwks?.close(), review?.close()]);
    },
  };
}
