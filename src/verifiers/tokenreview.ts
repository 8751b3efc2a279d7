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
  type TokenReviewClient,
} from './tokenreview-client.js';
import {
  cachedIdentitySchema,
  identityFromReview,
  reviewStatusSchema,
  type ReviewStatus,
} from './tokenreview-identity.js';
import type { ClusterVerifier, RoutedToken, TokenReviewLimits, WorkloadIdentity } from './types.js';

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
  const context = createReviewContext(cluster, deps);
  return {
    // The router parsed the token strictly: malformed or oversized tokens never reach the API server.
    verify: (routed) => verifyByReview(context, routed),
    warm: () => Promise.resolve(),
    // Nothing is kept that could go stale: each answer comes from the API server (or its cache).
    status: () => ({ cluster: cluster.name, issuer: cluster.issuer, ready: true, stale: false }),
    close() {
      context.inFlight.clear();
      return Promise.resolve();
    },
  };
}

/**
 * What one cluster's verifier works with, built once. Plain data: `inFlight` and `saturated`
 * change only through the functions below.
 */
interface ReviewContext {
  readonly cluster: ClusterConfig;
  readonly deps: TokenReviewDeps;
  readonly now: () => number;
  readonly client: TokenReviewClient;
  readonly log: Logger;
  readonly positiveTtlSeconds: number;
  readonly refusalTtlMs: number;
  readonly maxConcurrent: number;
  /** Concurrent exchanges of one token share one review. */
  readonly inFlight: Map<string, Promise<WorkloadIdentity>>;
  /** Set while at the concurrency limit, so the limit is logged once per episode. */
  saturated: boolean;
}

function createReviewContext(cluster: ClusterConfig, deps: TokenReviewDeps): ReviewContext {
  const timeoutMs = deps.timeoutMs ?? 5000;
  const client = createTokenReviewClient(cluster, { timeoutMs });
  return {
    cluster,
    deps,
    now: deps.now ?? Date.now,
    client,
    log: deps.logger.child({ module: 'tokenreview', cluster: cluster.name }),
    positiveTtlSeconds: deps.positiveTtlSeconds ?? DEFAULT_POSITIVE_TTL_SECONDS,
    refusalTtlMs: (deps.refusalTtlSeconds ?? DEFAULT_REFUSAL_TTL_SECONDS) * 1000,
    maxConcurrent: deps.maxConcurrentReviews ?? DEFAULT_MAX_CONCURRENT_REVIEWS,
    inFlight: new Map(),
    saturated: false,
  };
}

/** The cached answer (identity or refusal) when there is one, else the API server's. */
async function verifyByReview(
  context: ReviewContext,
  { jws: { token }, claims }: RoutedToken,
): Promise<WorkloadIdentity> {
  const { cluster } = context;
  const key = `tokenreview:${cluster.name}:${createHash('sha256').update(token).digest('hex')}`;
  const cached = await readCachedReview(context.deps.cache, key, context.log);
  if (cached && 'refused' in cached)
    throw refuse(cached.refused.reason, {
      ...cached.refused.detail,
      cluster: cluster.name,
      cached: true,
    });
  if (cached) return cached;
  return sharedReview(context, token, claims, key);
}

/** Joins the review of this token already in flight, or starts one if the limit allows. */
function sharedReview(
  context: ReviewContext,
  token: string,
  claims: Record<string, unknown>,
  key: string,
): Promise<WorkloadIdentity> {
  const { inFlight, maxConcurrent } = context;
  let pending = inFlight.get(key);
  if (!pending) {
    if (inFlight.size >= maxConcurrent) throw busy(context);
    pending = reviewAndCache(context, token, claims, key).finally(() => {
      inFlight.delete(key);
      if (inFlight.size < maxConcurrent) context.saturated = false;
    });
    inFlight.set(key, pending);
  }
  return pending;
}

async function reviewAndCache(
  context: ReviewContext,
  token: string,
  claims: Record<string, unknown>,
  key: string,
): Promise<WorkloadIdentity> {
  const { cluster, deps, now } = context;
  const status = await requestReviewStatus(context, token);
  let identity: WorkloadIdentity;
  try {
    identity = identityFromReview({
      cluster,
      status,
      claims,
      audiences: deps.audiences,
      nowSeconds: Math.floor(now() / 1000),
    });
  } catch (error) {
    countReview(context, 'unauthenticated');
    await cacheRefusal(context, key, error);
    throw error;
  }
  countReview(context, 'authenticated');
  const ttlMs = cacheTtlMs(identity.expiresAt, context.positiveTtlSeconds, now());
  if (ttlMs > 0) await deps.cache.set(key, JSON.stringify(identity), ttlMs);
  context.log.debug({ sub: identity.sub, jti: identity.jti }, 'token review authenticated');
  return identity;
}

/** The review's status as the API server gave it; any failure to get a readable one is a 503. */
async function requestReviewStatus(context: ReviewContext, token: string): Promise<ReviewStatus> {
  let rawStatus: unknown;
  try {
    rawStatus = await context.client.review(token, context.deps.audiences);
  } catch (error) {
    throw unavailable(context, error);
  }
  const parsed = reviewStatusSchema.safeParse(rawStatus);
  if (!parsed.success)
    throw unavailable(
      context,
      new ReviewCallError({ kind: 'malformed', reason: 'unexpected TokenReview status shape' }),
    );
  return parsed.data;
}

/** Only a refusal with a verifier reason is cached; anything else is not the token's fault. */
async function cacheRefusal(context: ReviewContext, key: string, error: unknown): Promise<void> {
  if (!isTesseraError(error) || !isVerifierReason(error.reason)) return;
  context.log.info(
    { reason: error.reason, ...error.detail },
    'token review refused the subject token',
  );
  const refusal: CachedReview = {
    refused: { reason: error.reason, detail: error.detail ?? {} },
  };
  await context.deps.cache.set(key, JSON.stringify(refusal), context.refusalTtlMs);
}

function unavailable(context: ReviewContext, error: unknown) {
  const { cluster, client, log } = context;
  const failure: ReviewCallFailure =
    error instanceof ReviewCallError
      ? error.failure
      : { kind: 'malformed', reason: 'unknown error' };
  countReview(context, failure.kind === 'timeout' ? 'timeout' : 'error');
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
}

function busy(context: ReviewContext) {
  const { cluster, client, log, maxConcurrent } = context;
  countReview(context, 'throttled');
  if (!context.saturated)
    log.warn(
      { server: client.server, maxConcurrentReviews: maxConcurrent },
      'token reviews at their concurrency limit: answering 503 until one finishes',
    );
  context.saturated = true;
  return refuse('review_busy', { cluster: cluster.name, maxConcurrentReviews: maxConcurrent });
}

function countReview(context: ReviewContext, result: string): void {
  context.deps.metrics?.tokenReviews.inc({ cluster: context.cluster.name, result });
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
