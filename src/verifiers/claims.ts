import { refuse, type VerifierReason } from './refusals.js';
import type { WorkloadIdentity } from './types.js';

/** Clock skew tolerated between the cluster and the broker, for `exp`, `nbf` and `iat`. */
const LEEWAY_SECONDS = 60;

export interface ClaimRules {
  /** The configured issuer: `iss` must equal it byte for byte. */
  issuer: string;
  /** `aud` must contain at least one of these. */
  audiences: readonly string[];
  nowSeconds: number;
  /** The cluster's `maxTokenLifetime` in seconds: the longest `exp − iat` accepted. */
  maxLifetimeSeconds: number;
}

/**
 * Checks the registered claims of a projected service-account token and refuses the legacy
 * Secret-based kind (no `exp`, no `aud`: it never expires and is meant for any audience).
 * Each refusal's detail names the token (`iss`, `sub`, `jti`) and the `claim` that failed.
 *
 * Hand-written rather than jose's `jwtVerify` options: the signature is checked first on a
 * node:crypto KeyObject (`signature.ts`, about 3× cheaper per token than jose's WebCrypto path),
 * and jose checks claims only inside `jwtVerify`; each refusal here also needs its own enumerated
 * reason, and the lifetime cap and legacy-token refusal have no jose option.
 */
export function checkClaims(claims: Record<string, unknown>, rules: ClaimRules): void {
  if (claims.iss !== rules.issuer) throw refuseClaim(claims, 'unknown_issuer', 'iss');
  if (isLegacySecretToken(claims))
    throw refuseClaim(claims, 'legacy_token', 'kubernetes.io/serviceaccount');
  checkTimes(claims, rules.nowSeconds);
  checkLifetime(claims, rules.maxLifetimeSeconds, rules.nowSeconds);
  if (typeof claims.sub !== 'string' || claims.sub === '')
    throw refuseClaim(claims, 'malformed_token', 'sub');
  checkAudience(claims, rules.audiences);
  checkProjectedShape(claims);
}

function refuseClaim(
  claims: Record<string, unknown>,
  reason: VerifierReason,
  claim: string,
  extra: Record<string, unknown> = {},
) {
  return refuse(reason, { iss: claims.iss, sub: claims.sub, jti: claims.jti, claim, ...extra });
}

/** `exp` is required; `exp`, `nbf` and `iat` are numbers, within the clock leeway of now. */
function checkTimes(claims: Record<string, unknown>, nowSeconds: number): void {
  const times: Partial<Record<'exp' | 'nbf' | 'iat', number>> = {};
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    const value = claims[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw refuseClaim(claims, 'malformed_token', name);
    times[name] = value;
  }
  const { exp, nbf, iat } = times;
  if (exp === undefined) throw refuseClaim(claims, 'missing_expiry', 'exp');
  if (nowSeconds >= exp + LEEWAY_SECONDS)
    throw refuseClaim(claims, 'token_expired', 'exp', { exp });
  if (nbf !== undefined && nbf > nowSeconds + LEEWAY_SECONDS)
    throw refuseClaim(claims, 'token_not_yet_valid', 'nbf', { nbf });
  if (iat !== undefined && iat > nowSeconds + LEEWAY_SECONDS)
    throw refuseClaim(claims, 'token_not_yet_valid', 'iat', { iat });
}

/** `aud` must be a string or a non-empty list of strings, naming at least one accepted audience. */
function checkAudience(claims: Record<string, unknown>, accepted: readonly string[]): void {
  const aud = audienceList(claims.aud);
  if (aud === undefined) throw refuseClaim(claims, 'audience_not_accepted', 'aud');
  if (!aud.some((value) => accepted.includes(value))) {
    throw refuseClaim(claims, 'audience_not_accepted', 'aud', { aud: aud.slice(0, 8), accepted });
  }
}

/**
 * `exp − iat` must not exceed the cluster's `maxTokenLifetime`: a token minted to live for
 * decades (`exp` = 1e20) would otherwise stay usable forever once leaked. A token without `iat`
 * cannot say how long it was meant to live, so what is left of it, `exp − now`, is bounded
 * instead (with the clock leeway): it is refused if it would outlive any token the cluster may
 * issue from now on.
 */
export function checkLifetime(
  claims: Record<string, unknown>,
  maxLifetimeSeconds: number,
  nowSeconds: number,
): void {
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp))
    throw refuseClaim(claims, 'missing_expiry', 'exp');
  const iat = claims.iat;
  const hasIat = typeof iat === 'number' && Number.isFinite(iat);
  const lifetime = hasIat ? exp - iat : exp - nowSeconds;
  const allowed = hasIat ? maxLifetimeSeconds : maxLifetimeSeconds + LEEWAY_SECONDS;
  if (lifetime > allowed) {
    // Without iat, what is bounded is the remaining life, exp − now.
    throw refuseClaim(claims, 'lifetime_too_long', hasIat ? 'iat' : 'exp', {
      lifetime,
      maxTokenLifetime: maxLifetimeSeconds,
    });
  }
}

/**
 * The projected-token shape every policy relies on: `kubernetes.io.namespace` and
 * `kubernetes.io.serviceaccount.name` are non-empty strings and `sub` is
 * `system:serviceaccount:<namespace>:<name>`. A token without it would be evaluated with a
 * missing or disagreeing namespace, and a guardrail Deny keyed on the namespace would silently
 * not fire. Pod and node, when present, must be objects whose name and uid are strings.
 * A refusal's `detail.claim` names the claim that broke the shape.
 */
export function checkProjectedShape(claims: Record<string, unknown>): void {
  const refuseShape = (claim: string) => refuseClaim(claims, 'not_projected_token', claim);
  const k8s = asRecord(claims['kubernetes.io']);
  if (!k8s) throw refuseShape('kubernetes.io');
  const namespace = k8s.namespace;
  if (typeof namespace !== 'string' || namespace === '')
    throw refuseShape('kubernetes.io.namespace');
  const serviceAccount = asRecord(k8s.serviceaccount);
  if (!serviceAccount || typeof serviceAccount.name !== 'string' || serviceAccount.name === '') {
    throw refuseShape('kubernetes.io.serviceaccount.name');
  }
  for (const part of ['serviceaccount', 'pod', 'node'] as const) {
    const value = k8s[part];
    if (value === undefined) continue;
    const record = asRecord(value);
    if (!record) throw refuseShape(`kubernetes.io.${part}`);
    for (const field of ['name', 'uid'] as const) {
      if (record[field] !== undefined && typeof record[field] !== 'string')
        throw refuseShape(`kubernetes.io.${part}.${field}`);
    }
  }
  if (claims.sub !== `system:serviceaccount:${namespace}:${serviceAccount.name}`)
    throw refuseShape('sub');
}

/**
 * The workload identity a projected token's claims carry (`kubernetes.io` object), as the JWKS
 * verifier returns it once the signature and claims are checked.
 */
export function identityFromProjectedToken(
  claims: Record<string, unknown>,
  cluster: string,
  verifiedBy: WorkloadIdentity['verifiedBy'],
): WorkloadIdentity {
  const k8s = asRecord(claims['kubernetes.io']);
  const named = (value: unknown): { name: string; uid?: string } | undefined => {
    const record = asRecord(value);
    if (typeof record?.name !== 'string') return undefined;
    return typeof record.uid === 'string'
      ? { name: record.name, uid: record.uid }
      : { name: record.name };
  };
  const identity: WorkloadIdentity = {
    cluster,
    // Verified tokens always carry both; `policy explain --claims` may hand in a partial claim set.
    iss: typeof claims.iss === 'string' ? claims.iss : '',
    sub: typeof claims.sub === 'string' ? claims.sub : '',
    aud: audienceList(claims.aud) ?? [],
    claims,
    verifiedBy,
  };
  if (typeof k8s?.namespace === 'string') identity.namespace = k8s.namespace;
  const serviceAccount = named(k8s?.serviceaccount);
  const pod = named(k8s?.pod);
  const node = named(k8s?.node);
  if (serviceAccount) identity.serviceAccount = serviceAccount;
  if (pod) identity.pod = pod;
  if (node) identity.node = node;
  if (typeof claims.exp === 'number') identity.expiresAt = claims.exp;
  if (typeof claims.jti === 'string') identity.jti = claims.jti;
  return identity;
}

function isLegacySecretToken(claims: Record<string, unknown>): boolean {
  return (
    claims['kubernetes.io'] === undefined &&
    Object.keys(claims).some((name) => name.startsWith('kubernetes.io/serviceaccount/'))
  );
}

function audienceList(aud: unknown): string[] | undefined {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.length > 0 && aud.every((value) => typeof value === 'string'))
    return aud;
  return undefined;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}
