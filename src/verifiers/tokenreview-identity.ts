import { z } from 'zod';
import { DEFAULT_MAX_TOKEN_LIFETIME, type ClusterConfig } from '../config/index.js';
import { invalidRequest, isTesseraError } from '../errors.js';
import { checkLifetime, checkProjectedShape } from './claims.js';
import type { WorkloadIdentity } from './types.js';

/**
 * What a TokenReview answer means for Tessera: the API server is the authority on who the token
 * belongs to (namespace, service account, pod, node come from `status.user`), the token's own
 * payload only supplies what the review does not say (iss, exp, the full claim set).
 */

const EXTRA = 'authentication.kubernetes.io/';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

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
  audiences: string[];
  /** Seconds since the epoch; default now. */
  nowSeconds?: number;
}): WorkloadIdentity {
  const { cluster, status, claims, audiences } = input;
  const refuse = (description: string, reason: string) => invalidRequest(description, { detail: { cluster: cluster.name, reason } });

  if (status.authenticated !== true) throw refuse('subject_token is not valid', `tokenreview: ${status.error ?? 'not authenticated'}`);
  const username = status.user?.username ?? '';
  const match = SERVICE_ACCOUNT_USER.exec(username);
  if (!match) throw refuse('subject_token is not a service-account token', 'tokenreview user is not a service account');
  if (claims.sub !== username) throw refuse('subject_token is not valid', 'token sub differs from the reviewed user');
  // An API server that is not audience-aware answers without status.audiences: the token is
  // then only valid for the API server itself, not for us.
  const aud = (status.audiences ?? []).filter((value) => audiences.includes(value));
  if (aud.length === 0) throw refuse('subject_token audience is not accepted', 'tokenreview vouched for none of our audiences');
  try {
    checkProjectedShape(claims);
    checkLifetime(claims, cluster.maxTokenLifetime ?? DEFAULT_MAX_TOKEN_LIFETIME, input.nowSeconds ?? Math.floor(Date.now() / 1000));
  } catch (error) {
    if (!isTesseraError(error)) throw error;
    throw refuse(error.description, String(error.detail?.reason));
  }

  const extra = status.user?.extra ?? {};
  const first = (key: string): string | undefined => extra[EXTRA + key]?.[0];
  const named = (name: string | undefined, uid: string | undefined) => (name ? { name, ...(uid ? { uid } : {}) } : undefined);
  const credential = first('credential-id');
  const jti = credential?.startsWith('JTI=') ? credential.slice(4) : typeof claims.jti === 'string' ? claims.jti : undefined;
  const serviceAccountUid = status.user?.uid;

  const identity: WorkloadIdentity = {
    cluster: cluster.name,
    iss: typeof claims.iss === 'string' ? claims.iss : cluster.issuer,
    sub: username,
    aud,
    namespace: match[1]!,
    serviceAccount: { name: match[3]!, ...(serviceAccountUid ? { uid: serviceAccountUid } : {}) },
    claims,
    verifiedBy: cluster.verify === 'jwks+tokenreview' ? 'jwks+tokenreview' : 'tokenreview',
  };
  const pod = named(first('pod-name'), first('pod-uid'));
  const node = named(first('node-name'), first('node-uid'));
  if (pod) identity.pod = pod;
  if (node) identity.node = node;
  if (jti) identity.jti = jti;
  if (typeof claims.exp === 'number' && Number.isFinite(claims.exp)) identity.expiresAt = claims.exp;
  return identity;
}
