import type { SharedCache } from '../cache/index.js';
import type { ClusterConfig } from '../config/index.js';
import { isTesseraError } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import { parseClaims, parseCompactJws } from './compact.js';
import { checkHeader } from './jws.js';
import { forParameter, refuse } from './refusals.js';
import { createClusterVerifier } from './registry.js';
import type {
  ClusterVerifier,
  RoutedToken,
  SubjectTokenVerifier,
  TokenReviewLimits,
  WorkloadIdentity,
} from './types.js';

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
  /** TokenReview limits for every TokenReview cluster (the defaults fit production). */
  tokenReview?: TokenReviewLimits;
}

const DEFAULT_MAX_STALE_SECONDS = 86_400;

/**
 * The strict parse every token goes through before any cluster sees it: the compact JWS form,
 * the header (accepted `alg`, no key pointers, no `crit`) and the claims as a JSON object.
 */
export function parseToken(token: string): RoutedToken {
  const jws = parseCompactJws(token);
  const alg = checkHeader(jws.header);
  return { jws, alg, claims: parseClaims(jws.payload) };
}

/**
 * The subject-token verifier: the strict parse, then routing by the token's `iss` (exact string
 * match against the configured clusters, never a prefix), then that cluster's verifier, built
 * from the registry for its `verify` mode. Every refusal is a `TesseraError` with a verifier
 * `reason`: `invalid_request` for a bad token, `temporarily_unavailable` when the cluster's keys
 * or API server cannot be reached, or when anything unexpected fails.
 *
 * @example
 *   const verifier = createSubjectTokenVerifier({ clusters: config.clusters, audience: config.audience, cache, logger });
 *   const identity = await verifier.verify(subjectToken);
 *   const actor = await verifier.verify(actorToken, { parameter: 'actor_token' });
 */
export function createSubjectTokenVerifier(
  options: SubjectTokenVerifierOptions,
): SubjectTokenVerifier {
  const now = options.now ?? Date.now;
  const clusters = new Map<string, ClusterVerifier>(
    options.clusters.map((cluster) => [
      cluster.issuer,
      createClusterVerifier(cluster, {
        cache: options.cache,
        logger: options.logger,
        ...(options.metrics ? { metrics: options.metrics } : {}),
        now,
        audiences: cluster.audiences ?? [options.audience],
        maxStaleSeconds: options.maxStaleSeconds ?? DEFAULT_MAX_STALE_SECONDS,
        ...(options.tokenReview ? { tokenReview: options.tokenReview } : {}),
      }),
    ]),
  );

  const route = (token: string): Promise<WorkloadIdentity> => {
    const routed = parseToken(token);
    const { iss } = routed.claims;
    const verifier = typeof iss === 'string' ? clusters.get(iss) : undefined;
    if (!verifier)
      throw refuse('unknown_issuer', {
        iss: typeof iss === 'string' ? iss.slice(0, 256) : typeof iss,
      });
    return verifier.verify(routed);
  };

  return {
    async verify(token, verifyOptions = {}) {
      try {
        return await route(token);
      } catch (error) {
        throw forParameter(
          asTesseraError(error, options.logger),
          verifyOptions.parameter ?? 'subject_token',
        );
      }
    },
    async warm() {
      await Promise.all([...clusters.values()].map((verifier) => verifier.warm()));
    },
    status: () => [...clusters.values()].map((verifier) => verifier.status()),
    async close() {
      await Promise.all([...clusters.values()].map((verifier) => verifier.close()));
    },
  };
}

/**
 * Anything but a `TesseraError` is not the client's fault: our bug or an infrastructure fault.
 * A 503 says "retry" where a 400 would say "this token is bad"; the description stays generic,
 * the log keeps the error.
 */
function asTesseraError(error: unknown, logger: Logger) {
  if (isTesseraError(error)) return error;
  logger.error({ err: error }, 'unexpected error while verifying a subject token');
  return refuse('verifier_fault', undefined, { cause: error });
}
