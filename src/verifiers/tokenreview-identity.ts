import { z } from 'zod';
import { DEFAULT_MAX_TOKEN_LIFETIME, type ClusterConfig } from '../config/index.js';
import { isTesseraError } from '../errors.js';
import { checkLifetime, checkProjectedShape } from './claims.js';
import { isVerifierReason, refuse } from './refusals.js';
import type { WorkloadIdentity } from './types.js';

/**
 * What a TokenReview answer means for Tessera: the API server is the authority on who the token
 * belongs to (namespace, service account, pod, node come from `status.user`), the token's own
 * payload only supplies what the review does not say (iss, exp, the full claim set).
 */

const EXTRA = 'authentication.kubernetes.io/';
const SERVICE_ACCOUNT_USER =
  /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

export const reviewStatusSchema = z.looseObject({
  authenticated: z.boolean().optional(),
  error: z.string().optional(),
  audiences: z.array(z.string()).optional(),
  user: z
    .looseObject({
      username: z.string().optional(),
      uid: z.string().optional(),
      groups: z.array(z.string()).optional(),
      extra: z.record(z.string(), z.array(z.string())).optional(),
    })
    .optional(),
});
export type ReviewStatus = z.infer<typeof reviewStatusSchema>;

const nameUid = z.strictObject({ name: z.string(), uid: z.string().optional() });

/** A cached identity read back from the shared cache (Redis is a boundary too). */
export const cachedIdentitySchema = z.strictObject({
  cluster: z.string(),
  iss: z.string(),
  sub: z.string(),
  aud: z.array(z.string()),
  namespace: z.string().optional(),
  serviceAccount: nameUid.optional(),
  pod: nameUid.optional(),
  node: nameUid.optional(),
  claims: z.record(z.string(), z.unknown()),
  expiresAt: z.number().optional(),
  jti: z.string().optional(),
  verifiedBy: z.enum(['jwks', 'tokenreview', 'jwks+tokenreview']),
});

/**
 * The workload identity of an authenticated review, or `invalid_request` (400) when the review
 * refuses the token, is not about a service account, or does not vouch for our audiences, or
 * when the token's own claims break the rules a JWKS-verified token must keep (the
 * projected-token shape agreeing with the reviewed user, and the cluster's `maxTokenLifetime`):
 * the claims are what `token:` conditions and templates read.
 */
export function identityFromReview(input: {
  cluster: ClusterConfig;
  status: ReviewStatus;
  claims: Record<string, unknown>;
  audiences: readonly string[];
  /** Seconds since the epoch; default now. */
  nowSeconds?: number;
}): WorkloadIdentity {
  const { cluster, status, claims } = input;
  const user = reviewedServiceAccount(cluster, status);
  if (claims.sub !== user.username)
    throw refuse('review_subject_mismatch', { cluster: cluster.name, claim: 'sub' });
  // An API server that is not audience-aware answers without status.audiences: the token is
  // then only valid for the API server itself, not for us.
  const aud = (status.audiences ?? []).filter((value) => input.audiences.includes(value));
  if (aud.length === 0) throw refuse('review_audience_not_accepted', { cluster: cluster.name });
  checkReviewedClaims(cluster, claims, input.nowSeconds ?? Math.floor(Date.now() / 1000));
  const serviceAccountUid = status.user?.uid;
  return {
    cluster: cluster.name,
    iss: typeof claims.iss === 'string' ? claims.iss : cluster.issuer,
    sub: user.username,
    aud,
    namespace: user.namespace,
    serviceAccount: {
      name: user.serviceAccount,
      ...(serviceAccountUid ? { uid: serviceAccountUid } : {}),
    },
    claims,
    verifiedBy: 'tokenreview',
    ...boundObjects(status, claims),
  };
}

/**
 * What the review says the token is bound to (`user.extra`: pod, node, credential id), with
 * the token's own `jti` and `exp` where the review is silent.
 */
function boundObjects(
  status: ReviewStatus,
  claims: Record<string, unknown>,
): Pick<WorkloadIdentity, 'pod' | 'node' | 'jti' | 'expiresAt'> {
  const extra = status.user?.extra ?? {};
  const first = (key: string): string | undefined => extra[EXTRA + key]?.[0];
  const credential = first('credential-id');
  const jti = credential?.startsWith('JTI=')
    ? credential.slice(4)
    : typeof claims.jti === 'string'
      ? claims.jti
      : undefined;
  const pod = named(first('pod-name'), first('pod-uid'));
  const node = named(first('node-name'), first('node-uid'));
  return {
    ...(pod ? { pod } : {}),
    ...(node ? { node } : {}),
    ...(jti ? { jti } : {}),
    ...(typeof claims.exp === 'number' && Number.isFinite(claims.exp)
      ? { expiresAt: claims.exp }
      : {}),
  };
}

/** The service account an authenticated review names, or the refusal of the token. */
function reviewedServiceAccount(
  cluster: ClusterConfig,
  status: ReviewStatus,
): { username: string; namespace: string; serviceAccount: string } {
  if (status.authenticated !== true) {
    // The API server's own words (e.g. "[invalid bearer token, Token has been invalidated]"), for the log only.
    throw refuse('review_refused', {
      cluster: cluster.name,
      reviewError: status.error ?? 'not authenticated',
    });
  }
  const username = status.user?.username ?? '';
  const match = SERVICE_ACCOUNT_USER.exec(username);
  const namespace = match?.[1];
  const serviceAccount = match?.[3];
  if (namespace === undefined || serviceAccount === undefined)
    throw refuse('review_not_service_account', { cluster: cluster.name });
  return { username, namespace, serviceAccount };
}

/** The rules a JWKS-verified token keeps, on the reviewed token's own claims; a refusal keeps its reason. */
function checkReviewedClaims(
  cluster: ClusterConfig,
  claims: Record<string, unknown>,
  nowSeconds: number,
): void {
  try {
    checkProjectedShape(claims);
    checkLifetime(claims, cluster.maxTokenLifetime ?? DEFAULT_MAX_TOKEN_LIFETIME, nowSeconds);
  } catch (error) {
    if (!isTesseraError(error) || !isVerifierReason(error.reason)) throw error;
    throw refuse(error.reason, { cluster: cluster.name, ...error.detail });
  }
}

const named = (name: string | undefined, uid: string | undefined) =>
  name ? { name, ...(uid ? { uid } : {}) } : undefined;
