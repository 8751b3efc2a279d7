import { randomBytes } from 'node:crypto';
import { base64url } from 'jose';
import { signJws } from '../keys/index.js';
import type { SigningKey } from '../keys/types.js';
import { invalidRequest } from '../errors.js';
import { RESERVED_CLAIMS, subjectLimitProblem, templateVars } from '../trust-policies/index.js';
import type { CompiledRole } from '../trust-policies/types.js';
import type { WorkloadIdentity } from '../verifiers/types.js';

export interface JwtIssueRequest {
  key: SigningKey;
  /** The broker's issuer: `iss` of every issued token. */
  issuer: string;
  role: CompiledRole;
  identity: WorkloadIdentity;
  /** One audience is issued as a string, several as an array (RFC 7519 §4.1.3). */
  audience: string[];
  lifetimeSeconds: number;
  scope?: string[];
  /** The verified actor, for delegation (`act` claim, RFC 8693 §4.1). */
  actor?: WorkloadIdentity;
  /** Seconds since the epoch. */
  now: number;
}

export interface IssuedJwt {
  token: string;
  jti: string;
  expiresAt: number;
  claims: Record<string, unknown>;
}


/**
 * Claims only Tessera sets. Policy loading refuses them in a role's `issue.claims`; they are
 * dropped here as well, so no template can forge a scope, a delegation or an identity.
 */
const reserved = new Set(RESERVED_CLAIMS);

function roleClaims(claims: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([name]) => !reserved.has(name)));
}

/** Only the Kubernetes facts a relying party may key on; absent parts are left out. */
function kubernetesClaim(identity: WorkloadIdentity): Record<string, unknown> | undefined {
  const claim: Record<string, unknown> = {};
  if (identity.namespace) claim.namespace = identity.namespace;
  if (identity.serviceAccount) claim.serviceaccount = { ...identity.serviceAccount };
  if (identity.pod) claim.pod = { ...identity.pod };
  return Object.keys(claim).length > 0 ? claim : undefined;
}

/**
 * Mint a JWT for `role`, signed through the key provider (the private key may live in an HSM
 * that jose cannot reach).
 *
 * @example const { token } = await issueJwt({ key, issuer, role, identity, audience, lifetimeSeconds: 900, now });
 */
export async function issueJwt(request: JwtIssueRequest): Promise<IssuedJwt> {
  const { identity, role, now } = request;
  const vars = templateVars(identity);
  const jti = base64url.encode(randomBytes(16));
  const expiresAt = now + request.lifetimeSeconds;
  const kubernetes = kubernetesClaim(identity);
  const sub = role.issue.subject ? role.issue.subject(vars) : identity.sub;
  // A subject the audience's cloud would refuse is refused here, where the caller can see why.
  const tooLong = subjectLimitProblem(sub, request.audience);
  if (tooLong) throw invalidRequest(tooLong);
  // Role claims come first and lose every reserved name, so they never shadow what follows.
  const claims: Record<string, unknown> = {
    ...roleClaims(role.issue.claims(vars)),
    iss: request.issuer,
    sub,
    aud: request.audience.length === 1 ? request.audience[0] : request.audience,
    iat: now,
    nbf: now,
    exp: expiresAt,
    jti,
    ...(kubernetes && { 'kubernetes.io': kubernetes }),
    tessera: { role: role.name, cluster: identity.cluster },
    ...(request.scope && request.scope.length > 0 && { scope: request.scope.join(' ') }),
    ...(request.actor && { act: { sub: request.actor.sub, iss: request.actor.iss } }),
  };
  const token = await signJws(request.key, { typ: 'JWT' }, claims);
  return { token, jti, expiresAt, claims };
}
