import { issuerHostPath } from './issuer.js';
import { evaluateStatement } from './statement.js';
import type { CompiledRole, CompiledStatement, Decision, EvaluationInput, PreparedInput, StatementTrace } from './types.js';

/** What every statement needs, computed once per decision rather than per statement. */
const prepare = (input: EvaluationInput): PreparedInput => ({ ...input, issuerHostPath: issuerHostPath(input.identity.iss) });

/**
 * AWS IAM evaluation: every statement is evaluated (the trace is for people), then an explicit
 * Deny wins, else the first matching Allow, else the implicit deny.
 */
export function evaluatePolicy(statements: readonly CompiledStatement[], input: EvaluationInput): Pick<Decision, 'decision' | 'decidedBy' | 'explicitDeny' | 'statements'> {
  const prepared = prepare(input);
  const traces = statements.map((statement) => evaluateStatement(statement, prepared));
  return conclude(statements, traces);
}

export function conclude(statements: readonly CompiledStatement[], traces: StatementTrace[]): Pick<Decision, 'decision' | 'decidedBy' | 'explicitDeny' | 'statements'> {
  const deny = traces.findIndex((trace) => trace.matched && trace.effect === 'Deny');
  if (deny >= 0) return { decision: 'deny', decidedBy: statements[deny]?.label, explicitDeny: true, statements: traces };
  const allow = traces.findIndex((trace) => trace.matched && trace.effect === 'Allow');
  if (allow >= 0) return { decision: 'allow', decidedBy: statements[allow]?.label, explicitDeny: false, statements: traces };
  return { decision: 'deny', explicitDeny: false, statements: traces };
}

/** The enforced decision (guardrails, then the role) and, when the role has one, the shadow outcome. */
export function decideRole(guardrailStatements: readonly CompiledStatement[], role: CompiledRole, given: EvaluationInput): Decision {
  const input = prepare(given);
  const guardrailTraces = guardrailStatements.map((statement) => evaluateStatement(statement, input));
  const enforcedStatements = [...guardrailStatements, ...role.trustPolicy.statements];
  const enforced = conclude(enforcedStatements, [
    ...guardrailTraces,
    ...role.trustPolicy.statements.map((statement) => evaluateStatement(statement, input)),
  ]);
  if (!role.shadowTrustPolicy) return enforced;
  const shadowStatements = [...guardrailStatements, ...role.shadowTrustPolicy.statements];
  const shadow = conclude(shadowStatements, [
    ...guardrailTraces,
    ...role.shadowTrustPolicy.statements.map((statement) => evaluateStatement(statement, input)),
  ]);
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
