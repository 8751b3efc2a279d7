import { issuerHostPath } from './principals.js';
import { evaluateStatement } from './statement.js';
import type {
  CompiledRole,
  CompiledStatement,
  Decision,
  EvaluationInput,
  PreparedInput,
  StatementTrace,
} from './types.js';

/**
 * `issuerHostPath` of each issuer seen, kept: it parses a URL, and a verified token's `iss` is
 * one of the few configured issuers (about 1 % of an exchange's CPU). Bounded, for `policy
 * explain` and tests that decide for arbitrary issuers.
 */
const hostPaths = new Map<string, string>();
const MAX_HOST_PATHS = 1024;
function hostPathOf(iss: string): string {
  let hostPath = hostPaths.get(iss);
  if (hostPath === undefined) {
    hostPath = issuerHostPath(iss);
    if (hostPaths.size >= MAX_HOST_PATHS) hostPaths.clear();
    hostPaths.set(iss, hostPath);
  }
  return hostPath;
}

/** What every statement needs, computed once per decision rather than per statement. */
const prepare = (input: EvaluationInput): PreparedInput => ({
  ...input,
  issuerHostPath: hostPathOf(input.identity.iss),
});

/**
 * AWS IAM evaluation over traces of every statement (the trace is for people): an explicit
 * Deny wins, else the first matching Allow, else the implicit deny.
 */
function conclude(
  statements: readonly CompiledStatement[],
  traces: StatementTrace[],
): Pick<Decision, 'decision' | 'decidedBy' | 'explicitDeny' | 'statements'> {
  const deny = traces.findIndex((trace) => trace.matched && trace.effect === 'Deny');
  if (deny >= 0)
    return {
      decision: 'deny',
      decidedBy: statements[deny]?.label,
      explicitDeny: true,
      statements: traces,
    };
  const allow = traces.findIndex((trace) => trace.matched && trace.effect === 'Allow');
  if (allow >= 0)
    return {
      decision: 'allow',
      decidedBy: statements[allow]?.label,
      explicitDeny: false,
      statements: traces,
    };
  return { decision: 'deny', explicitDeny: false, statements: traces };
}

/** A role's statement lists in evaluation order, built once per policy set rather than per request. */
export interface RolePlan {
  guardrails: readonly CompiledStatement[];
  /** Guardrails, then the role's trust policy. */
  enforced: readonly CompiledStatement[];
  /** Guardrails, then the role's shadow trust policy. */
  shadow?: readonly CompiledStatement[];
}

export function planRole(guardrails: readonly CompiledStatement[], role: CompiledRole): RolePlan {
  return {
    guardrails,
    enforced: [...guardrails, ...role.trustPolicy.statements],
    ...(role.shadowTrustPolicy
      ? { shadow: [...guardrails, ...role.shadowTrustPolicy.statements] }
      : {}),
  };
}

/** The enforced decision (guardrails, then the role) and, when the role has one, the shadow outcome. */
export function decideRole(plan: RolePlan, role: CompiledRole, given: EvaluationInput): Decision {
  const input = prepare(given);
  const evaluate = (statement: CompiledStatement) => evaluateStatement(statement, input);
  // Guardrails are evaluated once and their traces shared by the enforced and shadow outcomes.
  const guardrailTraces = plan.guardrails.map(evaluate);
  const enforced = conclude(
    plan.enforced,
    guardrailTraces.concat(role.trustPolicy.statements.map(evaluate)),
  );
  if (!plan.shadow || !role.shadowTrustPolicy) return enforced;
  const shadow = conclude(
    plan.shadow,
    guardrailTraces.concat(role.shadowTrustPolicy.statements.map(evaluate)),
  );
  return {
    ...enforced,
    shadow: {
      decision: shadow.decision,
      ...(shadow.decidedBy ? { decidedBy: shadow.decidedBy } : {}),
      statements: shadow.statements,
      disagrees: shadow.decision !== enforced.decision,
    },
  };
}
