import type { PodFacts } from '../attestation/index.js';
import type { JwsAlgorithm } from '../keys/index.js';
import type { WorkloadIdentity } from '../verifiers/index.js';

/** The verified TLS client certificate of the caller (mTLS on the token endpoint). */
export interface ClientCertificate {
  /** The subject DN, RFC 4514 style (`CN=orders, O=Example`); empty for a SPIFFE X.509-SVID. */
  subject: string;
  /** URI SANs: an X.509-SVID carries exactly one, its SPIFFE ID. */
  uris: string[];
}

/** What the caller asked for, visible to conditions as `request:*`. */
export interface RequestContext {
  audience: string[];
  scope: string[];
  tokenType: string;
  /** Present when the caller authenticated with a client certificate. */
  clientCert?: ClientCertificate;
}

export interface EvaluationInput {
  identity: WorkloadIdentity;
  request: RequestContext;
  /** Seconds since the epoch; Date* operators and CEL compare against it. */
  now: number;
}

/** An input with what every statement needs computed once per decision (by `PolicySet.decide`). */
export interface PreparedInput extends EvaluationInput {
  /** `identity.iss` as host+path: scheme and trailing slashes dropped, host lowercased, path exact. */
  issuerHostPath: string;
}

/** One condition as evaluated. `expected` is log/explain material, never sent to a client. */
export interface ConditionTrace {
  /** As written, e.g. `ForAnyValue:StringLike` or `StringEqualsIfExists` or `Cel`. */
  operator: string;
  key: string;
  expected: unknown[];
  /** The value(s) the request carried for `key`; `undefined` when the key is missing. */
  seen: unknown;
  matched: boolean;
  /** Why a condition could not be evaluated normally (a CEL error, a non-bool result). */
  note?: string;
}

export interface StatementTrace {
  sid?: string;
  effect: 'Allow' | 'Deny';
  /** `role:<name>`, `guardrail:<name>` or `shadow:<name>`. */
  source: string;
  principalMatched: boolean;
  actionMatched: boolean;
  conditions: ConditionTrace[];
  /** Principal, Action and every condition matched. */
  matched: boolean;
}

export interface Decision {
  decision: 'allow' | 'deny';
  /** Sid (or `statement[i]` of source) of the statement that decided; absent when nothing matched. */
  decidedBy?: string;
  explicitDeny: boolean;
  statements: StatementTrace[];
  /** The role's shadow trust policy (with the guardrails), evaluated but never enforced. */
  shadow?: ShadowOutcome;
}

export interface ShadowOutcome {
  decision: 'allow' | 'deny';
  decidedBy?: string;
  statements: StatementTrace[];
  /** The shadow decision differs from the enforced one. */
  disagrees: boolean;
}

/** The variables a template sees: `{{namespace}}`, `{{claims.kubernetes.io.pod.name}}`… */
export interface TemplateVars {
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
  cluster: string;
  sub: string;
  claims: Record<string, unknown>;
  /** Pod attestation facts, for `{{pod.label.<name>}}` and the like. */
  attestation?: PodFacts;
}

/** A template compiled at load time. */
export type Template = (vars: TemplateVars) => string;

export interface IssueProfile {
  /** Audiences this role may issue for; the first is the default. */
  audiences: string[];
  algorithm: JwsAlgorithm;
  /** Seconds, already capped by the 12 h hard cap and by every guardrail. */
  maxLifetime: number;
  defaultLifetime: number;
  /** Absent: the subject token's `sub`. */
  subject?: Template;
  /**
   * The role's extra claims, rendered from the compiled template tree. Throws an `invalid_request`
   * TesseraError when a rendered value breaks a rule (AWS session-tag limits).
   */
  claims: (vars: TemplateVars) => Record<string, unknown>;
  /** When present, requested scopes must be among these. */
  scopes?: string[];
  x509?: { spiffeId: Template; maxTtl: number; dnsNames: Template[] };
}

/** One condition compiled at load time: globs are RegExps, CEL is a parsed program. */
export interface CompiledCondition {
  /** As written, e.g. `ForAnyValue:StringLike`, `StringEqualsIfExists`, `Cel`. */
  operator: string;
  /** The base operator without qualifier or `IfExists`, e.g. `StringLike`. */
  baseOperator: string;
  qualifier?: 'ForAnyValue' | 'ForAllValues';
  ifExists: boolean;
  /** Negated operators (`StringNotEquals`…) match when the value matches none of `expected`. */
  negated: boolean;
  key: string;
  expected: unknown[];
  evaluate(input: PreparedInput): ConditionTrace;
}

export interface CompiledStatement {
  sid?: string;
  /** `sid`, or `<source>:statement[i]` when the statement has none. */
  label: string;
  effect: 'Allow' | 'Deny';
  source: string;
  /** `Principal.Federated` values; `['*']` for any. */
  principals: string[];
  actions: string[];
  conditions: CompiledCondition[];
  principalMatches(input: PreparedInput): boolean;
  /** Fixed at compile time: a request's action is always a token exchange. */
  actionMatches: boolean;
}

export interface CompiledPolicy {
  statements: CompiledStatement[];
}

export interface CompiledRole {
  name: string;
  /** The file the role came from, for messages. */
  file: string;
  issue: IssueProfile;
  trustPolicy: CompiledPolicy;
  shadowTrustPolicy?: CompiledPolicy;
}

export interface CompiledGuardrail {
  name: string;
  file: string;
  policy: CompiledPolicy;
  /** Seconds; caps every role's `maxLifetime` and x509 `maxTtl`. */
  maxLifetime?: number;
}

/** An immutable set of compiled roles and guardrails; a reload swaps in a new one. */
export interface PolicySet {
  roles: ReadonlyMap<string, CompiledRole>;
  guardrails: readonly CompiledGuardrail[];
  /** When the set was built (ms since the epoch), for logs and `/readyz`. */
  loadedAt: number;
  /** Digest of the files in the set (see `policyVersion`): logged at each reload, in every audit event, on `/readyz`. */
  version: string;
  /** The decision for `role`: guardrails, then the role's trust policy; shadow policy logged separately. */
  decide(role: CompiledRole, input: EvaluationInput): Decision;
}

export interface PolicyStore {
  /** The set in force now; a request keeps the set it started with. */
  current(): PolicySet;
  /** Files whose current version does not load (their last good version stays in force), for metrics. */
  failingFiles?(): number;
  close(): Promise<void>;
}
