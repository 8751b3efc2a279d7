import { invalidRequest } from '../errors.js';
import type { CredentialKind, IssueRequests, JwtRequest, SvidRequest } from '../issuers/index.js';
import type { WorkloadIdentity } from '../verifiers/index.js';
import { subjectLimitProblem } from './cloud-limits.js';
import { RESERVED_CLAIMS } from './compile.js';
import { templateVars } from './template.js';
import type { CompiledRole, TemplateVars } from './types.js';

/**
 * A role's `issue` section rendered, once, into the plain request an issuer takes: templates
 * filled from the verified identity, lifetimes capped, reserved claims dropped. Issuers render
 * nothing and read no policy.
 */

/** What the request and the verification contribute beside the role. */
export interface RenderInput {
  identity: WorkloadIdentity;
  /** The audiences to issue for, already checked against the role. */
  audiences: string[];
  /** The scopes granted, already checked against the role. */
  scope: string[];
  /** `duration_seconds`, when the client asked for a lifetime. */
  durationSeconds?: number;
  csr?: string;
  /** The verified actor token's identity. */
  actor?: WorkloadIdentity;
}

/** Whether `role` has an `issue` section for `kind`: every role issues JWTs, `issue.x509` adds X.509-SVIDs. */
export function roleIssues(role: CompiledRole, kind: CredentialKind): boolean {
  return kind === 'jwt' || role.issue.x509 !== undefined;
}

/**
 * Claims a role may not set (policy loading refuses them too); dropped here as well, so no
 * rendered value can forge a scope, a delegation or an identity.
 */
const reserved = new Set(RESERVED_CLAIMS);

function withoutReserved(rendered: Record<string, unknown>): Record<string, unknown> {
  // Policy loading refuses reserved names, so there is usually nothing to drop: the rendered
  // object is the role's fresh output, kept as it is (with templateVars assigning member by
  // member, renderIssueRequest went from 0.66 µs to 0.17 µs).
  const names = Object.keys(rendered);
  if (!names.some((name) => reserved.has(name))) return rendered;
  const claims: Record<string, unknown> = {};
  for (const name of names) {
    if (reserved.has(name)) continue;
    // An own member like any other, never the object's prototype.
    Object.defineProperty(claims, name, {
      value: rendered[name],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return claims;
}

/** Only the Kubernetes facts a relying party may key on; absent parts are left out. */
function kubernetesClaim(identity: WorkloadIdentity): Record<string, unknown> | undefined {
  const claim: Record<string, unknown> = {};
  if (identity.namespace) claim.namespace = identity.namespace;
  if (identity.serviceAccount) claim.serviceaccount = { ...identity.serviceAccount };
  if (identity.pod) claim.pod = { ...identity.pod };
  return Object.keys(claim).length > 0 ? claim : undefined;
}

function renderJwt(role: CompiledRole, input: RenderInput, vars: TemplateVars): JwtRequest {
  const { identity, actor } = input;
  const subject = role.issue.subject ? role.issue.subject(vars) : identity.sub;
  // A subject the audience's cloud would refuse is refused here, where the caller can see why.
  const tooLong = subjectLimitProblem(subject, input.audiences);
  if (tooLong) throw invalidRequest(tooLong, { reason: 'subject_too_long' });
  const kubernetes = kubernetesClaim(identity);
  const request: JwtRequest = {
    algorithm: role.issue.algorithm,
    subject,
    audiences: input.audiences,
    lifetimeSeconds: Math.min(
      input.durationSeconds ?? role.issue.defaultLifetime,
      role.issue.maxLifetime,
    ),
    claims: withoutReserved(role.issue.claims(vars)),
    scope: input.scope,
    tessera: { role: role.name, cluster: identity.cluster },
  };
  if (kubernetes) request.kubernetes = kubernetes;
  if (actor) request.actor = { sub: actor.sub, iss: actor.iss };
  return request;
}

function renderSvid(role: CompiledRole, input: RenderInput, vars: TemplateVars): SvidRequest {
  const profile = role.issue.x509;
  if (!profile)
    throw invalidRequest(`role ${role.name} does not issue x509-svid credentials`, {
      reason: 'role_does_not_issue',
    });
  if (input.csr === undefined)
    throw invalidRequest('csr is required for an x509-svid', { reason: 'csr_required' });
  return {
    csr: input.csr,
    spiffeId: profile.spiffeId(vars),
    dnsNames: profile.dnsNames.map((template) => template(vars)).filter((name) => name !== ''),
    ttlSeconds: Math.min(input.durationSeconds ?? profile.maxTtl, profile.maxTtl),
  };
}

const RENDERERS: {
  [K in CredentialKind]: (
    role: CompiledRole,
    input: RenderInput,
    vars: TemplateVars,
  ) => IssueRequests[K];
} = {
  jwt: renderJwt,
  'x509-svid': renderSvid,
};

/**
 * The request for an issuer of `kind`, rendered from `role`. Throws an `invalid_request`
 * TesseraError when a rendered value is unsafe where it lands or too long for the audience.
 */
export function renderIssueRequest<K extends CredentialKind>(
  kind: K,
  role: CompiledRole,
  input: RenderInput,
): IssueRequests[K] {
  const render: (role: CompiledRole, input: RenderInput, vars: TemplateVars) => IssueRequests[K] =
    RENDERERS[kind];
  return render(role, input, templateVars(input.identity));
}
