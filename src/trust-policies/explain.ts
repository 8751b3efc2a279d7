import type { ClusterConfig } from '../config/index.js';
import { escapeLines } from '../terminal/index.js';
import { identityFromProjectedToken as verifiedIdentity } from '../verifiers/index.js';
import type { WorkloadIdentity } from '../verifiers/index.js';
import { issuerHostPath } from './principals.js';
import type {
  CompiledRole,
  CompiledStatement,
  ConditionTrace,
  Decision,
  PolicySet,
  StatementTrace,
} from './types.js';

/**
 * `policy explain`: the live evaluator run offline on a claim set, and its trace in words.
 * Claims are read the way the verifier reads a projected token (`kubernetes.io` object).
 */

/** The cluster a claim set belongs to: `--cluster`, else the configured cluster whose issuer is `iss`, else `iss`'s host. */
export function clusterFor(
  claims: Record<string, unknown>,
  clusters: readonly ClusterConfig[],
  explicit?: string,
): string {
  if (explicit) return explicit;
  const iss = typeof claims.iss === 'string' ? claims.iss : '';
  const cluster = clusters.find((entry) => entry.issuer === iss);
  return cluster?.name ?? issuerHostPath(iss);
}

/** The identity a `jwks` verifier would derive from `claims`, for evaluating a claim set offline. */
export function offlineIdentity(
  claims: Record<string, unknown>,
  cluster: string,
): WorkloadIdentity {
  return verifiedIdentity(claims, cluster, 'jwks');
}

/** Statements in evaluation order (guardrails first), matching `decision.statements`. */
function statementsOf(set: PolicySet, role: CompiledRole, shadow = false): CompiledStatement[] {
  const policy = shadow ? role.shadowTrustPolicy : role.trustPolicy;
  return [
    ...set.guardrails.flatMap((guardrail) => guardrail.policy.statements),
    ...(policy?.statements ?? []),
  ];
}

const json = (value: unknown) => (value === undefined ? 'missing' : JSON.stringify(value));

function conditionLine(condition: ConditionTrace): string {
  const mark = condition.matched ? '+' : '-';
  const note = condition.note ? ` (${condition.note})` : '';
  if (condition.operator === 'Cel')
    return `    ${mark} ${condition.key} ${String(condition.expected[0])}: ${json(condition.seen)}${note}`;
  return `    ${mark} ${condition.operator} ${condition.key}: seen ${json(condition.seen)}, expected ${JSON.stringify(condition.expected)}${note}`;
}

function statementBlock(
  statement: CompiledStatement,
  trace: StatementTrace,
  decidedBy: string | undefined,
): string[] {
  const decided = decidedBy === statement.label && trace.matched ? '  <- decided' : '';
  return [
    `  [${statement.source}] ${statement.effect} ${statement.label}: ${trace.matched ? 'MATCHED' : 'not matched'}${decided}`,
    `    principal ${statement.principals.join(', ')}: ${trace.principalMatched ? 'matched' : 'not matched'}`,
    `    action ${statement.actions.join(', ')}: ${trace.actionMatched ? 'matched' : 'not matched'}`,
    ...trace.conditions.map(conditionLine),
  ];
}

function verdict(decision: Pick<Decision, 'decision' | 'decidedBy' | 'explicitDeny'>): string {
  if (decision.decision === 'allow') return `ALLOW by ${decision.decidedBy}`;
  return decision.explicitDeny
    ? `DENY by explicit Deny ${decision.decidedBy}`
    : 'DENY (no Allow statement matched)';
}

export interface ExplainContext {
  identity: WorkloadIdentity;
  audience: string[];
  tokenType: string;
  now: number;
  /** One line about the token's signature, when a token was given. */
  signature?: string;
}

/** The human trace of `policy explain`; every line escaped, since claims and policy values are printed as they came. */
export function formatExplain(
  set: PolicySet,
  role: CompiledRole,
  decision: Decision,
  context: ExplainContext,
): string {
  const { identity } = context;
  const lines = [
    `role: ${role.name} (${role.file})`,
    `decision: ${verdict(decision)}`,
    ...(context.signature ? [`token: ${context.signature}`] : []),
    `identity: cluster=${identity.cluster} iss=${identity.iss} sub=${identity.sub} namespace=${identity.namespace ?? '-'} serviceaccount=${identity.serviceAccount?.name ?? '-'}`,
    ...(identity.attestation
      ? [
          `pod: owner=${identity.attestation.owner ?? '-'} images=${identity.attestation.images.join(',') || '-'}`,
        ]
      : []),
    `request: audience=${context.audience.join(',') || '-'} token_type=${context.tokenType} at=${new Date(context.now * 1000).toISOString()}`,
    'statements:',
  ];
  statementsOf(set, role).forEach((statement, index) => {
    const trace = decision.statements[index];
    if (trace) lines.push(...statementBlock(statement, trace, decision.decidedBy));
  });
  if (decision.shadow) {
    const shadow = decision.shadow;
    lines.push(
      `shadow: ${verdict({ ...shadow, explicitDeny: shadow.statements.some((s) => s.matched && s.effect === 'Deny') })}${shadow.disagrees ? ' (DISAGREES with the enforced decision)' : ' (agrees)'}`,
    );
    statementsOf(set, role, true).forEach((statement, index) => {
      const trace = shadow.statements[index];
      if (trace && statement.source.startsWith('shadow:'))
        lines.push(...statementBlock(statement, trace, shadow.decidedBy));
    });
  }
  return escapeLines(lines);
}

/** `--json`: `{decision, decidedBy, statements: [...]}` plus the role and, when present, shadow and signature. */
export function explainJson(
  role: CompiledRole,
  decision: Decision,
  signature?: string,
): Record<string, unknown> {
  return {
    role: role.name,
    decision: decision.decision,
    decidedBy: decision.decidedBy ?? null,
    explicitDeny: decision.explicitDeny,
    statements: decision.statements,
    ...(decision.shadow ? { shadow: decision.shadow } : {}),
    ...(signature ? { signature } : {}),
  };
}
