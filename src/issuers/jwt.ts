import { randomBytes } from 'node:crypto';
import { base64url } from 'jose';
import type { SigningKey } from '../keys/types.js';
import { templateVars } from '../trust-policies/index.js';
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


const encodeJson = (value: unknown): string => base64url.encode(JSON.stringify(value));

/** Only the Kubernetes facts a relying party may key on; absent parts are left out. */
function kubernetesClaim(identity: WorkloadIdentity): Record<string, unknown> | undefined {
  const claim: Record<string, unknown> = {};
  if (identity.namespace) claim.namespace = identity.namespace;
  if (identity.serviceAccount) claim.serviceaccount = { ...identity.serviceAccount };
  if (identity.pod) claim.pod = { ...identity.pod };
  return Object.keys(claim).length > 0 ? claim : undefined;
}

/**
 * Mint a JWT for `role`. The compact JWS is assembled here and signed through the key
 * provider, because the private key may live in an HSM that jose cannot reach.
 *
 * @example const { token } = await issueJwt({ key, issuer, role, identity, audience, lifetimeSeconds: 900, now });
 */
export async function issueJwt(request: JwtIssueRequest): Promise<IssuedJwt> {
  const { identity, role, now } = request;
  const vars = templateVars(identity);
  const jti = base64url.encode(randomBytes(16));
  const expiresAt = now + request.lifetimeSeconds;
  const kubernetes = kubernetesClaim(identity);
  // Role claims come first so that they can never overwrite the registered claims below.
  const claims: Record<string, unknown> = {
    ...role.issue.claims(vars),
    iss: request.issuer,
    sub: role.issue.subject ? role.issue.subject(vars) : identity.sub,
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
  const header = { alg: request.key.alg, kid: request.key.kid, typ: 'JWT' };
  const signingInput = `${encodeJson(header)}.${encodeJson(claims)}`;
  const signature = await request.key.sign(Buffer.from(signingInput));
  return { token: `${signingInput}.${base64url.encode(signature)}`, jti, expiresAt, claims };
}
