import type { Logger, Metrics } from '../observability/index.js';
import { decideRole, planRole } from './decide.js';
import type { CompiledFile } from './compile.js';
import { policyVersion } from './version.js';
import type {
  CompiledGuardrail,
  CompiledRole,
  Decision,
  EvaluationInput,
  PolicySet,
} from './types.js';

export interface SetOptions {
  logger?: Logger;
  metrics?: Pick<Metrics, 'shadowDisagreements'>;
  now?: () => number;
}

type RoleFileEntry = Extract<CompiledFile, { kind: 'Role' }>;
type GuardrailFileEntry = Extract<CompiledFile, { kind: 'Guardrail' }>;

/** Fold guardrail lifetime caps into a role: no role can issue past them. */
function capRole(role: CompiledRole, cap: number | undefined): CompiledRole {
  if (cap === undefined) return role;
  const maxLifetime = Math.min(role.issue.maxLifetime, cap);
  return {
    ...role,
    issue: {
      ...role.issue,
      maxLifetime,
      defaultLifetime: Math.min(role.issue.defaultLifetime, maxLifetime),
      ...(role.issue.x509
        ? { x509: { ...role.issue.x509, maxTtl: Math.min(role.issue.x509.maxTtl, cap) } }
        : {}),
    },
  };
}

/**
 * Assemble an immutable set from compiled files (already free of errors, one role per name).
 * The set logs and counts shadow disagreements as it decides.
 */
export function buildPolicySet(
  files: ReadonlyArray<RoleFileEntry | GuardrailFileEntry>,
  options: SetOptions = {},
): PolicySet {
  const guardrails: CompiledGuardrail[] = files.flatMap((file) =>
    file.kind === 'Guardrail' ? [file.guardrail] : [],
  );
  const caps = guardrails.flatMap((guardrail) =>
    guardrail.maxLifetime === undefined ? [] : [guardrail.maxLifetime],
  );
  const cap = caps.length > 0 ? Math.min(...caps) : undefined;
  const roles = new Map<string, CompiledRole>();
  for (const file of files)
    if (file.kind === 'Role') roles.set(file.role.name, capRole(file.role, cap));
  const guardrailStatements = guardrails.flatMap((guardrail) => guardrail.policy.statements);
  const plans = new Map(
    [...roles.values()].map((role) => [role, planRole(guardrailStatements, role)]),
  );
  return Object.freeze({
    roles,
    guardrails,
    loadedAt: (options.now ?? Date.now)(),
    version: policyVersion(files.map((file) => file.source)),
    decide(role: CompiledRole, input: EvaluationInput): Decision {
      // A role from another set (a caller mixing sets) is planned on the spot, never misjudged.
      const decision = decideRole(
        plans.get(role) ?? planRole(guardrailStatements, role),
        role,
        input,
      );
      if (decision.shadow?.disagrees) {
        options.metrics?.shadowDisagreements.inc({
          role: role.name,
          enforced: decision.decision,
          shadow: decision.shadow.decision,
        });
        options.logger?.warn(
          {
            role: role.name,
            cluster: input.identity.cluster,
            iss: input.identity.iss,
            sub: input.identity.sub,
            namespace: input.identity.namespace,
            jti: input.identity.jti,
            enforced: decision.decision,
            enforcedBy: decision.decidedBy,
            shadow: decision.shadow.decision,
            shadowBy: decision.shadow.decidedBy,
          },
          'shadow trust policy disagrees with the enforced one',
        );
      }
      return decision;
    },
  });
}
