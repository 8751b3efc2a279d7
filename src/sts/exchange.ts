import type { PodAttestor } from '../attestation/index.js';
import { accessDenied, invalidRequest, invalidScope } from '../errors.js';
import type {
  CredentialKind,
  IssuedCredential,
  Issuer,
  Issuers,
  RegisteredIssuer,
} from '../issuers/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import {
  denialDescription,
  renderIssueRequest,
  roleIssues,
  type RenderInput,
} from '../trust-policies/index.js';
import type { CompiledRole, PolicySet, PolicyStore } from '../trust-policies/index.js';
import type { SubjectTokenVerifier, WorkloadIdentity } from '../verifiers/index.js';
import { auditDecision, auditIdentity, auditIssued, type ExchangeAudit } from './audit.js';
import type { TokenExchangeRequest } from './request.js';
import { issuedAudiences, selectRole } from './select-role.js';

export interface ExchangeDeps {
  verifier: SubjectTokenVerifier;
  policies: PolicyStore;
  /** Requested token type → issuer (`createIssuers`); a type missing there is refused. */
  issuers: Issuers;
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
  if (unknown.length > 0) {
    throw invalidScope(`scope is not allowed for role ${role.name}`, {
      reason: 'scope_not_allowed',
      detail: { role: role.name, scopes: unknown },
    });
  }
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
function verifyActor(verifier: SubjectTokenVerifier, token: string): Promise<WorkloadIdentity> {
  return verifier.verify(token, { parameter: 'actor_token' });
}

/**
 * The subject (and actor) token is verified completely, TokenReview included, before anything
 * about the requested role is looked at: otherwise a garbage token would learn which roles
 * exist, their audiences, scopes and whether they issue X.509 from the refusals.
 */
async function verifyTokens(
  deps: ExchangeDeps,
  request: TokenExchangeRequest,
  audit: ExchangeAudit | undefined,
): Promise<{ identity: WorkloadIdentity; actor?: WorkloadIdentity }> {
  const verified = await deps.verifier.verify(request.subjectToken);
  auditIdentity(audit, verified);
  deps.limitIdentity?.(verified);
  // What the pod really runs is looked up only for a verified token, so a forged one costs no API call.
  const attestation = await deps.attestation?.attest(verified);
  const identity = attestation ? { ...verified, attestation } : verified;
  if (request.actorToken === undefined) return { identity };
  return { identity, actor: await verifyActor(deps.verifier, request.actorToken) };
}

/** The issuer of the requested token type, refused unless this broker has one and the role issues its kind. */
function issuerFor(issuers: Issuers, role: CompiledRole, tokenType: string): RegisteredIssuer {
  const registered = issuers.get(tokenType);
  if (!registered) {
    throw invalidRequest(
      `this broker does not issue ${tokenType.slice(tokenType.lastIndexOf(':') + 1)} credentials`,
      {
        reason: 'issuer_not_configured',
      },
    );
  }
  const { kind } = registered.issuer;
  if (!roleIssues(role, kind))
    throw invalidRequest(`role ${role.name} does not issue ${kind} credentials`, {
      reason: 'role_does_not_issue',
    });
  return registered;
}

/** Throws `access_denied` unless the role's trust policy and the guardrails allow the request. */
function decideOrRefuse(
  deps: ExchangeDeps,
  policySet: PolicySet,
  role: CompiledRole,
  request: TokenExchangeRequest,
  input: RenderInput,
  audit?: ExchangeAudit,
): void {
  const { identity, audiences } = input;
  const decision = policySet.decide(role, {
    identity,
    request: {
      audience: audiences,
      scope: request.scope,
      tokenType: request.requestedTokenType,
      ...(request.clientCert && { clientCert: request.clientCert }),
    },
    now: Math.floor(deps.now() / 1000),
  });
  auditDecision(audit, role, decision);
  if (decision.decision === 'allow') return;
  // The audit event names the deciding statement and failing condition; this line has the whole trace.
  deps.logger.info(
    {
      requestId: audit?.requestId,
      role: role.name,
      ...identityForLog(identity),
      decidedBy: decision.decidedBy,
      trace: decision.statements,
    },
    'token exchange denied',
  );
  throw accessDenied(denialDescription(role, decision), {
    reason: 'policy_denied',
    detail: { role: role.name, decidedBy: decision.decidedBy },
  });
}

/** Renders the role's `issue` section for this issuer's kind, once, and issues from it. */
function issue<K extends CredentialKind>(
  issuer: Issuer<K>,
  role: CompiledRole,
  input: RenderInput,
): Promise<IssuedCredential> {
  return issuer.issue(renderIssueRequest(issuer.kind, role, input));
}

/**
 * The token exchange, HTTP-free: verify the subject, pick the role, decide, render, issue.
 * Every failure is a TesseraError; every outcome leaves one audit event.
 */
export async function exchangeToken(
  deps: ExchangeDeps,
  request: TokenExchangeRequest,
  audit?: ExchangeAudit,
): Promise<{ role: string; body: ExchangeResponse }> {
  const policySet = deps.policies.current();
  if (audit) audit.policyVersion = policySet.version;
  const { identity, actor } = await verifyTokens(deps, request, audit);
  const role = selectRole(policySet, request.resource, request.audience);
  if (audit) audit.role = role.name;
  const audiences = issuedAudiences(role, request.audience);
  if (audit) audit.audience = audiences;
  const input: RenderInput = {
    identity,
    audiences,
    scope: allowedScopes(role, request.scope),
    ...(request.durationSeconds !== undefined && { durationSeconds: request.durationSeconds }),
    ...(request.csr !== undefined && { csr: request.csr }),
    ...(actor && { actor }),
  };
  const registered = issuerFor(deps.issuers, role, request.requestedTokenType);
  decideOrRefuse(deps, policySet, role, request, input, audit);

  const credential = await issue(registered.issuer, role, input);
  if (credential.fields.certificate !== undefined)
    deps.metrics?.certificatesIssued.inc({ role: role.name });
  auditIssued(audit, {
    credential: credential.fields.access_token,
    exp: credential.expiresAt,
    jti: credential.jti,
  });
  if (actor)
    deps.logger.info(
      { requestId: audit?.requestId, actorSub: actor.sub, actorCluster: actor.cluster },
      'token exchange with an actor',
    );
  const { access_token, ...fields } = credential.fields;
  return {
    role: role.name,
    body: {
      access_token,
      issued_token_type: registered.tokenType,
      token_type: registered.bearer,
      ...fields,
    },
  };
}
