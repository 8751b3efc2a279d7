import type { PodAttestor } from '../attestation/index.js';
import { accessDenied, invalidRequest, invalidScope, isTesseraError, TesseraError } from '../errors.js';
import { issueJwt } from '../issuers/index.js';
import type { KeyProvider } from '../keys/types.js';
import type { Logger, Metrics } from '../observability/index.js';
import { denialDescription, templateVars } from '../trust-policies/index.js';
import type { CompiledRole, Decision, PolicyStore } from '../trust-policies/types.js';
import type { SubjectTokenVerifier, WorkloadIdentity } from '../verifiers/types.js';
import { auditDecision, auditIdentity, auditIssued, type ExchangeAudit } from './audit.js';
import { TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_X509_SVID, type TokenExchangeRequest } from './request.js';
import { issuedAudiences, selectRole } from './select-role.js';

/** Mints X.509-SVIDs; present when the broker has a CA. */
export interface SvidIssuer {
  issueSvid(request: { csr: string; spiffeId: string; dnsNames: string[]; ttlSeconds: number }): Promise<{
    certificatePem: string;
    chainPem: string[];
    trustBundlePem: string[];
    expiresAt: number;
  }>;
}

export interface ExchangeDeps {
  issuer: string;
  verifier: SubjectTokenVerifier;
  policies: PolicyStore;
  keys: KeyProvider;
  svids?: SvidIssuer;
  /** Reads the token's pod from its cluster, for clusters with `podAttestation`. */
  attestation?: PodAttestor;
  logger: Logger;
  metrics?: Metrics;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Throws `slow_down` when this verified workload has used up its rate. */
  limitIdentity?: (identity: WorkloadIdentity) => void;
}

/** The RFC 8693 §2.2.1 response body. */
export interface ExchangeResponse {
  access_token: string;
  issued_token_type: string;
  token_type: string;
  expires_in: number;
  scope?: string;
  certificate?: string;
  certificate_chain?: string[];
  trust_bundle?: string[];
}

function allowedScopes(role: CompiledRole, requested: string[]): string[] {
  // A role without scopes ignores them: clients such as google-auth-library always send one.
  if (!role.issue.scopes) return [];
  const unknown = requested.filter((scope) => !role.issue.scopes?.includes(scope));
  if (unknown.length > 0) throw invalidScope(`scope is not allowed for role ${role.name}`, { detail: { role: role.name, scopes: unknown } });
  return requested;
}

function identityForLog(identity: WorkloadIdentity): Record<string, unknown> {
  return {
    cluster: identity.cluster,
    iss: identity.iss,
    sub: identity.sub,
    namespace: identity.namespace,
    serviceAccount: identity.serviceAccount?.name,
    pod: identity.pod?.name,
    subjectJti: identity.jti,
  };
}

/** The actor token goes through the same verifier; its refusals name it, not the subject token. */
async function verifyActor(verifier: SubjectTokenVerifier, token: string): Promise<WorkloadIdentity> {
  try {
    return await verifier.verify(token);
  } catch (error) {
    if (!isTesseraError(error)) throw error;
    throw new TesseraError(error.code, error.status, error.description.replaceAll('subject_token', 'actor_token'), {
      detail: { ...error.detail, token: 'actor' },
      cause: error.cause,
    });
  }
}

/**
 * The token exchange, HTTP-free: verify the subject, pick the role, decide, mint.
 * Every failure is a TesseraError; every outcome leaves one audit event.
 */
export async function exchangeToken(
  deps: ExchangeDeps,
  request: TokenExchangeRequest,
  audit?: ExchangeAudit,
): Promise<{ role: string; body: ExchangeResponse }> {
  const policySet = deps.policies.current();
  if (audit) audit.policyVersion = policySet.version;
  // The subject (and actor) token is verified completely, TokenReview included, before anything
  // about the requested role is looked at: otherwise a garbage token would learn which roles
  // exist, their audiences, scopes and whether they issue X.509 from the refusals.
  const verified = await deps.verifier.verify(request.subjectToken);
  auditIdentity(audit, verified);
  deps.limitIdentity?.(verified);
  // What the pod really runs is looked up only for a verified token, so a forged one costs no API call.
  const attestation = await deps.attestation?.attest(verified);
  const identity = attestation ? { ...verified, attestation } : verified;
  const actor = request.actorToken === undefined ? undefined : await verifyActor(deps.verifier, request.actorToken);
  const role = selectRole(policySet, request.resource, request.audience);
  if (audit) audit.role = role.name;
  const audiences = issuedAudiences(role, request.audience);
  if (audit) audit.audience = audiences;
  const scope = allowedScopes(role, request.scope);
  if (request.requestedTokenType === TOKEN_TYPE_X509_SVID) x509Profile(deps, role);
  const now = Math.floor(deps.now() / 1000);

  const decision: Decision = policySet.decide(role, {
    identity,
    request: { audience: audiences, scope: request.scope, tokenType: request.requestedTokenType, ...(request.clientCert && { clientCert: request.clientCert }) },
    now,
  });
  auditDecision(audit, role, decision);
  if (decision.decision !== 'allow') {
    // The audit event names the deciding statement and failing condition; this line has the whole trace.
    deps.logger.info({ requestId: audit?.requestId, role: role.name, ...identityForLog(identity), decidedBy: decision.decidedBy, trace: decision.statements }, 'token exchange denied');
    throw accessDenied(denialDescription(role, decision), { detail: { role: role.name, decidedBy: decision.decidedBy } });
  }

  if (request.requestedTokenType === TOKEN_TYPE_X509_SVID) {
    const response = await issueSvid(deps, role, identity, request);
    deps.metrics?.certificatesIssued.inc({ role: role.name });
    auditIssued(audit, { credential: response.access_token, exp: Math.floor(deps.now() / 1000) + response.expires_in });
    return { role: role.name, body: response };
  }

  const lifetime = Math.min(request.durationSeconds ?? role.issue.defaultLifetime, role.issue.maxLifetime);
  const key = await deps.keys.signingKey(role.issue.algorithm);
  const issued = await issueJwt({ key, issuer: deps.issuer, role, identity, audience: audiences, lifetimeSeconds: lifetime, scope, actor, now });
  auditIssued(audit, { credential: issued.token, exp: issued.expiresAt, jti: issued.jti });
  if (actor) deps.logger.info({ requestId: audit?.requestId, actorSub: actor.sub, actorCluster: actor.cluster }, 'token exchange with an actor');
  const isAccessToken = request.requestedTokenType === TOKEN_TYPE_ACCESS_TOKEN;
  const body: ExchangeResponse = {
    access_token: issued.token,
    issued_token_type: request.requestedTokenType,
    // RFC 8693 §2.2.1: "N_A" when the issued token is not an access token.
    token_type: isAccessToken ? 'Bearer' : 'N_A',
    expires_in: lifetime,
    ...(scope.length > 0 && { scope: scope.join(' ') }),
  };
  return { role: role.name, body };
}

function x509Profile(deps: ExchangeDeps, role: CompiledRole) {
  const profile = role.issue.x509;
  if (!profile) throw invalidRequest(`role ${role.name} does not issue x509-svid credentials`);
  if (!deps.svids) throw invalidRequest('this broker does not issue x509-svid credentials');
  return { profile, svids: deps.svids };
}

async function issueSvid(deps: ExchangeDeps, role: CompiledRole, identity: WorkloadIdentity, request: TokenExchangeRequest): Promise<ExchangeResponse> {
  const { profile, svids } = x509Profile(deps, role);
  const vars = templateVars(identity);
  const ttlSeconds = Math.min(request.durationSeconds ?? profile.maxTtl, profile.maxTtl);
  // Read before issuing: a second ticking over during issuance must not shorten the answer to 599.
  const issuedAt = Math.floor(deps.now() / 1000);
  const svid = await svids.issueSvid({
    csr: request.csr as string,
    spiffeId: profile.spiffeId(vars),
    dnsNames: profile.dnsNames.map((template) => template(vars)).filter((name) => name !== ''),
    ttlSeconds,
  });
  return {
    access_token: svid.certificatePem,
    issued_token_type: TOKEN_TYPE_X509_SVID,
    token_type: 'N_A',
    expires_in: Math.max(0, Math.min(ttlSeconds, svid.expiresAt - issuedAt)),
    certificate: svid.certificatePem,
    certificate_chain: svid.chainPem,
    trust_bundle: svid.trustBundlePem,
  };
}
