import { invalidRequest } from '../errors.js';
import type { WorkloadIdentity } from './types.js';

/** Clock skew tolerated between the cluster and the broker, for `exp`, `nbf` and `iat`. */
export const LEEWAY_SECONDS = 60;

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
 */
export function checkClaims(claims: Record<string, unknown>, rules: ClaimRules): void {
  const identity = { iss: claims.iss, sub: claims.sub, jti: claims.jti };
  const fail = (description: string, reason: string, extra: Record<string, unknown> = {}) =>
    invalidRequest(description, { detail: { ...identity, reason, ...extra } });

  if (claims.iss !== rules.issuer) throw fail('subject_token issuer is not trusted', 'iss differs from the cluster issuer');
  if (isLegacySecretToken(claims)) throw fail('subject_token is a legacy service-account token; use a projected token', 'legacy secret token');
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    if (claims[name] !== undefined && !(typeof claims[name] === 'number' && Number.isFinite(claims[name]))) {
      throw fail('subject_token is malformed', `${name} is not a number`);
    }
  }
  const exp = claims.exp as number | undefined;
  const nbf = claims.nbf as number | undefined;
  const iat = claims.iat as number | undefined;
  if (exp === undefined) throw fail('subject_token has no expiry', 'exp missing');
  if (rules.nowSeconds >= exp + LEEWAY_SECONDS) throw fail('subject_token is expired', 'exp passed', { exp });
  if (nbf !== undefined && nbf > rules.nowSeconds + LEEWAY_SECONDS) throw fail('subject_token is not yet valid', 'nbf in the future', { nbf });
  if (iat !== undefined && iat > rules.nowSeconds + LEEWAY_SECONDS) throw fail('subject_token is not yet valid', 'iat in the future', { iat });
  checkLifetime(claims, rules.maxLifetimeSeconds, rules.nowSeconds);
  if (typeof claims.sub !== 'string' || claims.sub === '') throw fail('subject_token is malformed', 'sub missing');
  const aud = audienceList(claims.aud);
  if (aud === undefined) throw fail('subject_token audience not accepted', 'aud missing or not strings');
  if (!aud.some((value) => rules.audiences.includes(value))) {
    throw fail('subject_token audience not accepted', 'no accepted audience', { aud: aud.slice(0, 8), accepted: rules.audiences });
  }
  checkProjectedShape(claims);
}

/**
 * `exp − iat` must not exceed the cluster's `maxTokenLifetime`: a token minted to live for
 * decades (`exp` = 1e20) would otherwise stay usable forever once leaked. A token without `iat`
 * cannot say how long it was meant to live, so what is left of it, `exp − now`, is bounded
 * instead (with the clock leeway): it is refused if it would outlive any token the cluster may
 * issue from now on.
 */
export function checkLifetime(claims: Record<string, unknown>, maxLifetimeSeconds: number, nowSeconds: number): void {
  const identity = { iss: claims.iss, sub: claims.sub, jti: claims.jti };
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw invalidRequest('subject_token has no expiry', { detail: { ...identity, reason: 'exp missing or not a number' } });
  }
  const iat = claims.iat;
  const hasIat = typeof iat === 'number' && Number.isFinite(iat);
  const lifetime = hasIat ? exp - iat : exp - nowSeconds;
  const allowed = hasIat ? maxLifetimeSeconds : maxLifetimeSeconds + LEEWAY_SECONDS;
  if (lifetime > allowed) {
    throw invalidRequest("subject_token lifetime exceeds the cluster's maxTokenLifetime", {
      detail: { ...identity, reason: hasIat ? 'exp - iat above maxTokenLifetime' : 'no iat and exp - now above maxTokenLifetime', lifetime, maxTokenLifetime: maxLifetimeSeconds },
    });
  }
}

/**
 * The projected-token shape every policy relies on: `kubernetes.io.namespace` and
 * `kubernetes.io.serviceaccount.name` are non-empty strings and `sub` is
 * `system:serviceaccount:<namespace>:<name>`. A token without it would be evaluated with a
 * missing or disagreeing namespace, and a guardrail Deny keyed on the namespace would silently
 * not fire. Pod and node, when present, must be objects whose name and uid are strings.
 */
export function checkProjectedShape(claims: Record<string, unknown>): void {
  const refuse = (reason: string) =>
    invalidRequest('subject_token is not a projected service-account token', { detail: { iss: claims.iss, sub: claims.sub, jti: claims.jti, reason } });
  const k8s = asRecord(claims['kubernetes.io']);
  if (!k8s) throw refuse('kubernetes.io claim missing or not an object');
  const namespace = k8s.namespace;
  if (typeof namespace !== 'string' || namespace === '') throw refuse('kubernetes.io.namespace is not a string');
  const serviceAccount = asRecord(k8s.serviceaccount);
  if (!serviceAccount || typeof serviceAccount.name !== 'string' || serviceAccount.name === '') {
    throw refuse('kubernetes.io.serviceaccount.name is not a string');
  }
  for (const part of ['serviceaccount', 'pod', 'node'] as const) {
    const value = k8s[part];
    if (value === undefined) continue;
    const record = asRecord(value);
    if (!record) throw refuse(`kubernetes.io.${part} is not an object`);
    for (const field of ['name', 'uid'] as const) {
      if (record[field] !== undefined && typeof record[field] !== 'string') throw refuse(`kubernetes.io.${part}.${field} is not a string`);
    }
  }
  if (claims.sub !== `system:serviceaccount:${namespace}:${serviceAccount.name}`) {
    throw refuse('sub differs from kubernetes.io namespace and service account');
  }
}

/** The identity carried by a projected token's claims (`kubernetes.io` object). */
export function identityFromClaims(
  claims: Record<string, unknown>,
  cluster: string,
  verifiedBy: WorkloadIdentity['verifiedBy'],
): WorkloadIdentity {
  const k8s = asRecord(claims['kubernetes.io']);
  const named = (value: unknown): { name: string; uid?: string } | undefined => {
    const record = asRecord(value);
    if (typeof record?.name !== 'string') return undefined;
    return typeof record.uid === 'string' ? { name: record.name, uid: record.uid } : { name: record.name };
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
  return claims['kubernetes.io'] === undefined && Object.keys(claims).some((name) => name.startsWith('kubernetes.io/serviceaccount/'));
}

function audienceList(aud: unknown): string[] | undefined {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.length > 0 && aud.every((value) => typeof value === 'string')) return aud as string[];
  return undefined;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
