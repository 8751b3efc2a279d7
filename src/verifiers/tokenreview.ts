import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { SharedCache } from '../cache/index.js';
import type { ClusterConfig } from '../config/index.js';
import { isTesseraError } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import { isVerifierReason, refuse, type VerifierReason } from './refusals.js';
import {
  ReviewCallError,
  createTokenReviewClient,
  type ReviewCallFailure,
} from './tokenreview-client.js';
import {
  cachedIdentitySchema,
  identityFromReview,
  reviewStatusSchema,
} from './tokenreview-identity.js';
import type { ClusterVerifier, TokenReviewLimits, WorkloadIdentity } from './types.js';

export interface TokenReviewDeps extends TokenReviewLimits {
  cache: SharedCache;
  logger: Logger;
  metrics?: Metrics;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** What the review asks the API server to vouch for (`spec.audiences`). */
  audiences: readonly string[];
}

/**
 * Any well-formed JWT naming a TokenReview cluster costs one API-server call without a valid
 * signature, so calls are bounded: at most this many at once per cluster (never an unbounded
 * queue), and a refused token is answered from the cache for a few seconds.
 */
const DEFAULT_MAX_CONCURRENT_REVIEWS = 32;
const DEFAULT_REFUSAL_TTL_SECONDS = 10;
const DEFAULT_POSITIVE_TTL_SECONDS = 60;

/** A refusal shares the positive answer's cache key: one cache read per request either way. */
const cachedRefusalSchema = z.strictObject({
  refused: z.strictObject({
    reason: z.custom<VerifierReason>(isVerifierReason),
    detail: z.record(z.string(), z.unknown()),
  }),
});
const cachedReviewSchema = z.union([cachedIdentitySchema, cachedRefusalSchema]);
type CachedReview = z.infer<typeof cachedReviewSchema>;

/**
 * `verify: tokenreview`: verifies a token by asking the cluster's API server (TokenReview), which is the only
 * way to notice that the pod a token is bound to is gone. A refused token is a 400
 * `invalid_request`; an API server that cannot be reached, refuses the broker's own credentials
 * or times out is a 503 `temporarily_unavailable`, logged with the cluster and status, never
 * the token. Answers are shared through `deps.cache` under the token's SHA-256: positive ones
 * for up to 60 s, refusals for 10 s (so one token replayed in a loop costs one review per 10 s);
 * failures to reach the API server are never cached. At most `maxConcurrentReviews` distinct
 * tokens are reviewed at once per cluster; beyond that, 503 without waiting.
 *
 * @example
 *   const verifier = createTokenReviewVerifier(cluster, { cache, logger, audiences: ['sts.example.com'] });
 *   const identity = await verifier.verify(routedToken);
 */
export function createTokenReviewVerifier(
  cluster: ClusterConfig,
  deps: TokenReviewDeps,
): ClusterVerifier {
  const now = deps.now ?? Date.now;
  const timeoutMs = deps.timeoutMs ?? 5000;
  const positiveTtlSeconds = deps.positiveTtlSeconds ?? DEFAULT_POSITIVE_TTL_SECONDS;
  const client = createTokenReviewClient(cluster, { timeoutMs });
  const log = deps.logger.child({ module: 'tokenreview', cluster: cluster.name });
  // Concurrent exchanges of one token share one review.
  const inFlight = new Map<string, Promise<WorkloadIdentity>>();
  const maxConcurrent = deps.maxConcurrentReviews ?? DEFAULT_MAX_CONCURRENT_REVIEWS;
  const refusalTtlMs = (deps.refusalTtlSeconds ?? DEFAULT_REFUSAL_TTL_SECONDS) * 1000;
  let saturated = false;

  const count = (result: string) =>
    deps.metrics?.tokenReviews.inc({ cluster: cluster.name, result });

  const readCached = (key: string) => readCachedReview(deps.cache, key, log);

  const reviewAndCache = async (
    token: string,
    claims: Record<string, unknown>,
    key: string,
  ): Promise<WorkloadIdentity> => {
    let rawStatus: unknown;
    try {
      rawStatus = await client.review(token, deps.audiences);
    } catch (error) {
      throw unavailable(error);
    }
    const parsed = reviewStatusSchema.safeParse(rawStatus);
    if (!parsed.success)
      throw unavailable(
        new ReviewCallError({ kind: 'malformed', reason: 'unexpected TokenReview status shape' }),
      );
    let identity: WorkloadIdentity;
    try {
      identity = identityFromReview({
        cluster,
        status: parsed.data,
        claims,
        audiences: deps.audiences,
        nowSeconds: Math.floor(now() / 1000),
      });
    } catch (error) {
      count('unauthenticated');
      if (isTesseraError(error) && isVerifierReason(error.reason)) {
        log.info(
          { reason: error.reason, ...error.detail },
          'token review refused the subject token',
        );
        const refusal: CachedReview = {
          refused: { reason: error.reason, detail: error.detail ?? {} },
        };
        await deps.cache.set(key, JSON.stringify(refusal), refusalTtlMs);
      }
      throw error;
    }
    count('authenticated');
    const ttlMs = cacheTtlMs(identity.expiresAt, positiveTtlSeconds, now());
    if (ttlMs > 0) await deps.cache.set(key, JSON.stringify(identity), ttlMs);
    log.debug({ sub: identity.sub, jti: identity.jti }, 'token review authenticated');
    return identity;
  };

  const unavailable = (error: unknown) => {
    const failure: ReviewCallFailure =
      error instanceof ReviewCallError
        ? error.failure
        : { kind: 'malformed', reason: 'unknown error' };
    count(failure.kind === 'timeout' ? 'timeout' : 'error');
    const fields = {
      server: client.server,
      status: failure.status,
      reason: failure.reason,
      failure: failure.kind,
    };
    if (failure.status === 401 || failure.status === 403)
      log.error(fields, adviceFor(failure.status));
    else
      log.warn(
        fields,
        `token review failed (${failure.kind}): ${KIND_ADVICE[failure.kind]}; answering 503`,
      );
    return refuse('review_unavailable', {
      cluster: cluster.name,
      server: client.server,
      status: failure.status,
      failure: failure.kind,
      serverReason: failure.reason,
    });
  };

  const busy = () => {
    count('throttled');
    if (!saturated)
      log.warn(
        { server: client.server, maxConcurrentReviews: maxConcurrent },
        'token reviews at their concurrency limit: answering 503 until one finishes',
      );
    saturated = true;
    return refuse('review_busy', { cluster: cluster.name, maxConcurrentReviews: maxConcurrent });
  };

  return {
    // The router parsed the token strictly: malformed or oversized tokens never reach the API server.
    async verify({ jws: { token }, claims }) {
      const key = `tokenreview:${cluster.name}:${createHash('sha256').update(token).digest('hex')}`;
      const cached = await readCached(key);
      if (cached && 'refused' in cached)
        throw refuse(cached.refused.reason, {
          ...cached.refused.detail,
          cluster: cluster.name,
          cached: true,
        });
      if (cached) return cached;
      let pending = inFlight.get(key);
      if (!pending) {
        if (inFlight.size >= maxConcurrent) throw busy();
        pending = reviewAndCache(token, claims, key).finally(() => {
          inFlight.delete(key);
          if (inFlight.size < maxConcurrent) saturated = false;
        });
        inFlight.set(key, pending);
      }
      return pending;
    },
    warm: () => Promise.resolve(),
    // Nothing is kept that could go stale: each answer comes from the API server (or its cache).
    status: () => ({ cluster: cluster.name, issuer: cluster.issuer, ready: true, stale: false }),
    close() {
      inFlight.clear();
      return Promise.resolve();
    },
  };
}

/** The cached answer for a token, or undefined; an unreadable one counts as absent. */
async function readCachedReview(
  cache: SharedCache,
  key: string,
  log: Logger,
): Promise<CachedReview | undefined> {
  const raw = await cache.get(key);
  if (raw === undefined) return undefined;
  try {
    return cachedReviewSchema.parse(JSON.parse(raw));
  } catch {
    log.warn({ key }, 'ignoring an unreadable cached token review');
    return undefined;
  }
}

/** min(positive TTL, the token's remaining life); 0 (do not cache) once it has expired. */
export function cacheTtlMs(
  expiresAt: number | undefined,
  positiveTtlSeconds: number,
  nowMs: number,
): number {
  const cap = positiveTtlSeconds * 1000;
  if (expiresAt === undefined) return cap;
  return Math.max(0, Math.min(cap, expiresAt * 1000 - nowMs));
}

const KIND_ADVICE: Record<ReviewCallFailure['kind'], string> = {
  network:
    'the API server is unreachable or its TLS certificate is not trusted (kubeconfig CA or caFile)',
  timeout: 'the API server did not answer in time',
  http: 'the API server answered with an error',
  malformed: 'the API server answer could not be read',
};

function adviceFor(status: 401 | 403): string {
  return status === 401
    ? "token review refused: the API server did not accept the broker's credentials (401); check the cluster's kubeconfig user"
    : 'token review refused: the broker may not create tokenreviews (403); bind its service account to the ClusterRole system:auth-delegator';
}
