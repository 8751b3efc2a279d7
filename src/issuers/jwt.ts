import { randomFillSync } from 'node:crypto';
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

/** The role's rendered claims without reserved names, written into `claims` (which starts empty). */
function addRoleClaims(claims: Record<string, unknown>, rendered: Record<string, unknown>): void {
  for (const name of Object.keys(rendered)) {
    if (reserved.has(name)) continue;
    // An own member like any other, never the object's prototype.
    const value = rendered[name];
    if (name === '__proto__') Object.defineProperty(claims, name, { value, enumerable: true, writable: true, configurable: true });
    else claims[name] = value;
  }
}

/**
 * 128-bit `jti`s cut from a pool filled 256 at a time: one CSPRNG call per 256 tokens instead of
 * one per token. Each slice is handed out once.
 */
const JTI_BYTES = 16;
const jtiPool = Buffer.alloc(JTI_BYTES * 256);
let jtiOffset = jtiPool.length;
function newJti(): string {
  if (jtiOffset === jtiPool.length) {
    randomFillSync(jtiPool);
    jtiOffset = 0;
  }
  const jti = jtiPool.toString('base64url', jtiOffset, jtiOffset + JTI_BYTES);
  jtiOffset += JTI_BYTES;
  return jti;
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
  const jti = newJti();
  const expiresAt = now + request.lifetimeSeconds;
  const kubernetes = kubernetesClaim(identity);
  const sub = role.issue.subject ? role.issue.subject(vars) : identity.sub;
  // A subject the audience's cloud would refuse is refused here, where the caller can see why.
  const tooLong = subjectLimitProblem(sub, request.audience);
  if (tooLong) throw invalidRequest(tooLong);
  // Role claims come first and lose every reserved name, so they never shadow what follows.
  const claims: Record<string, unknown> = {};
  addRoleClaims(claims, role.issue.claims(vars));
  claims.iss = request.issuer;
  claims.sub = sub;
  claims.aud = request.audience.length === 1 ? request.audience[0] : request.audience;
  claims.iat = now;
  claims.nbf = now;
  claims.exp = expiresAt;
  claims.jti = jti;
  if (kubernetes) claims['kubernetes.io'] = kubernetes;
  claims.tessera = { role: role.name, cluster: identity.cluster };
  if (request.scope && request.scope.length > 0) claims.scope = request.scope.join(' ');
  if (request.actor) claims.act = { sub: request.actor.sub, iss: request.actor.iss };
  const token = await signJws(request.key, { typ: 'JWT' }, claims);
  return { token, jti, expiresAt, claims };
}
