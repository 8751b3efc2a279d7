import type { CompiledRole, ConditionTrace, Decision, StatementTrace } from './types.js';

const MAX_SEEN = 120;

/** The value a request carried, short and JSON-quoted; it is the caller's own data. */
function describeSeen(seen: unknown): string {
  if (seen === undefined || seen === null || (Array.isArray(seen) && seen.length === 0))
    return 'no value';
  // Claims and request values come from JSON, so they always serialise; `typeof` covers the rest.
  const text = (JSON.stringify(seen) as string | undefined) ?? typeof seen;
  return text.length > MAX_SEEN ? `${text.slice(0, MAX_SEEN)}…` : text;
}

/** The condition an Allow failed on, in words the caller may read: never the expected values. */
function failedConditionDescription(condition: ConditionTrace): string {
  // Why a CEL expression could not be evaluated is the CEL library's message, which may quote
  // claim names and values or the policy: it stays in the trace (the log, policy explain).
  if (condition.operator === 'Cel')
    return `condition ${condition.key} ${condition.note ? 'could not be evaluated' : 'evaluated to false'}`;
  return `condition ${condition.operator} on "${condition.key}" did not match; the request carried ${describeSeen(condition.seen)}`;
}

/** The Allow statement that came closest: principal matched, fewest failing conditions. */
export function nearestAllow(
  statements: StatementTrace[],
  roleSource: string,
): StatementTrace | undefined {
  const allows = statements.filter(
    (statement) => statement.effect === 'Allow' && statement.source === roleSource,
  );
  const failing = (statement: StatementTrace) =>
    statement.conditions.filter((condition) => !condition.matched).length;
  return (
    allows
      .filter((statement) => statement.principalMatched)
      .sort((a, b) => failing(a) - failing(b))[0] ?? allows[0]
  );
}

/**
 * The 403 `error_description` a caller can act on: the role, the Deny that matched (by Sid),
 * or the first failing condition's operator and key and the value the token carried. Never the
 * policy's expected values (those would teach an attacker what to forge), nor a CEL error.
 *
 * @example denialDescription(role, decision) // 'role "demo" denied: condition StringEquals on "kubernetes.io/namespace" did not match; the request carried "kube-public"'
 */
export function denialDescription(role: CompiledRole, decision: Decision): string {
  const prefix = `role "${role.name}" denied`;
  if (decision.explicitDeny) {
    const deny = decision.statements.find(
      (statement) => statement.matched && statement.effect === 'Deny',
    );
    const origin = deny?.source.startsWith('guardrail:')
      ? `guardrail "${deny.source.slice('guardrail:'.length)}"`
      : 'the role';
    return `${prefix}: explicit Deny statement "${decision.decidedBy ?? 'unnamed'}" of ${origin} matched`;
  }
  const allow = nearestAllow(decision.statements, `role:${role.name}`);
  if (!allow) return `${prefix}: the trust policy has no Allow statement`;
  if (!allow.principalMatched)
    return `${prefix}: no Allow statement names the token's cluster as Principal`;
  if (!allow.actionMatched) return `${prefix}: no Allow statement allows the token exchange action`;
  const failed = allow.conditions.find((condition) => !condition.matched);
  return failed
    ? `${prefix}: ${failedConditionDescription(failed)}`
    : `${prefix}: no Allow statement matched`;
}
