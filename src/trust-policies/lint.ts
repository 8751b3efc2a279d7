import type { ClusterConfig } from '../config/index.js';
import { issuerHostPath, principalMatcher } from './issuer.js';
import { compileFile, duplicateProblems, listPolicyFiles, type ValidFile } from './load.js';
import { podKeyProblems } from './lint-pod-keys.js';
import { globToRegExp } from './operators.js';
import type { Path, Problem } from './source.js';
import type { CompiledCondition, CompiledStatement } from './types.js';

export interface LintOptions {
  /** When given, every Principal must name one of these clusters. */
  clusters?: ClusterConfig[];
}

export interface LintResult {
  problems: Problem[];
  /** Files examined. */
  files: string[];
}

/**
 * Everything the loader rejects, plus what only a reviewer would catch: ambiguous audiences,
 * principals naming no cluster, roles a guardrail makes unusable.
 */
export function lintDirectory(dir: string, options: LintOptions = {}): LintResult {
  const files = listPolicyFiles(dir);
  const compiled = files.map(compileFile);
  const valid = compiled.filter((file): file is ValidFile => file.kind !== 'invalid');
  const problems = [
    ...compiled.flatMap((file) => file.problems),
    ...duplicateProblems(valid),
    ...audienceProblems(valid),
    ...(options.clusters ? principalProblems(valid, options.clusters) : []),
    ...(options.clusters ? podKeyProblems(valid, options.clusters) : []),
    ...unusableRoleProblems(valid),
  ];
  problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
  return { problems, files };
}

function audienceProblems(files: readonly ValidFile[]): Problem[] {
  const owner = new Map<string, { role: string; file: string }>();
  const problems: Problem[] = [];
  for (const file of files) {
    if (file.kind !== 'Role') continue;
    file.raw.issue.audiences.forEach((audience, index) => {
      const first = owner.get(audience);
      if (!first) owner.set(audience, { role: file.role.name, file: file.file });
      else if (first.role !== file.role.name) {
        problems.push(
          file.source.problem(
            ['issue', 'audiences', index],
            `audience "${audience}" is also issued by role "${first.role}" (${first.file}): a request for it without resource is ambiguous`,
            { severity: 'warning' },
          ),
        );
      }
    });
  }
  return problems;
}

interface RawStatementList {
  field: string;
  statements: unknown;
}

function rawPolicies(file: ValidFile): RawStatementList[] {
  if (file.kind === 'Guardrail') return file.raw.policy ? [{ field: 'policy', statements: file.raw.policy.Statement }] : [];
  const out = [{ field: 'trustPolicy', statements: file.raw.trustPolicy.Statement as unknown }];
  if (file.raw.shadowTrustPolicy) out.push({ field: 'shadowTrustPolicy', statements: file.raw.shadowTrustPolicy.Statement });
  return out;
}

function principalProblems(files: readonly ValidFile[], clusters: ClusterConfig[]): Problem[] {
  const problems: Problem[] = [];
  const names = clusters.map((cluster) => cluster.name).join(', ') || 'none';
  for (const file of files) {
    for (const { field, statements } of rawPolicies(file)) {
      const list = Array.isArray(statements) ? statements : [statements];
      list.forEach((statement: { Principal: '*' | { Federated: string | string[] } }, index) => {
        if (statement.Principal === '*') return;
        const federated = statement.Principal.Federated;
        (Array.isArray(federated) ? federated : [federated]).forEach((principal, j) => {
          const matches = principalMatcher(principal);
          if (clusters.some((cluster) => matches(cluster.name, cluster.issuer, issuerHostPath(cluster.issuer)))) return;
          const path: Path = [field, 'Statement', ...(Array.isArray(statements) ? [index] : []), 'Principal', 'Federated', ...(Array.isArray(federated) ? [j] : [])];
          problems.push(file.source.problem(path, `Principal "${principal}" names no configured cluster (known: ${names})`));
        });
      });
    }
  }
  return problems;
}

const LITERAL_OPERATORS = new Set(['StringEquals', 'StringEqualsIgnoreCase', 'StringLike']);

/** A plain, positive, single-valued string condition; the only kind whose implication is cheap to decide. */
const plain = (condition: CompiledCondition) =>
  LITERAL_OPERATORS.has(condition.baseOperator) && !condition.negated && !condition.qualifier && !condition.ifExists;

function valueMatches(deny: CompiledCondition, value: string): boolean {
  return deny.expected.some((expected) => {
    const text = String(expected);
    if (deny.baseOperator === 'StringLike') return globToRegExp(text).test(value);
    if (deny.baseOperator === 'StringEqualsIgnoreCase') return text.toLowerCase() === value.toLowerCase();
    return text === value;
  });
}

/** Every request `allow` admits is denied by `deny` (conservative: false when unsure). */
function covers(deny: CompiledStatement, allow: CompiledStatement): boolean {
  if (!deny.actionMatches) return false;
  if (!deny.principals.includes('*') && !allow.principals.every((principal) => deny.principals.includes(principal))) return false;
  return deny.conditions.every((denyCondition) => {
    if (!plain(denyCondition)) return false;
    return allow.conditions.some(
      (allowCondition) =>
        plain(allowCondition) &&
        allowCondition.key.toLowerCase() === denyCondition.key.toLowerCase() &&
        (allowCondition.baseOperator !== 'StringLike' || allowCondition.expected.every((value) => !/[*?]/.test(String(value)))) &&
        allowCondition.expected.every((value) => valueMatches(denyCondition, String(value))),
    );
  });
}

function unusableRoleProblems(files: readonly ValidFile[]): Problem[] {
  const guardrails = files.flatMap((file) => (file.kind === 'Guardrail' ? [file.guardrail] : []));
  const problems: Problem[] = [];
  for (const file of files) {
    if (file.kind !== 'Role') continue;
    const allows = file.role.trustPolicy.statements.filter((statement) => statement.effect === 'Allow');
    if (allows.length === 0) continue;
    const blockers = allows.map((allow) =>
      guardrails.flatMap((guardrail) => guardrail.policy.statements.map((deny) => ({ guardrail, deny }))).find(({ deny }) => covers(deny, allow)),
    );
    if (blockers.some((blocker) => blocker === undefined)) continue;
    const first = blockers[0];
    if (!first) continue;
    problems.push(
      file.source.problem(
        ['metadata', 'name'],
        `role "${file.role.name}" can never be obtained: guardrail "${first.guardrail.name}" statement "${first.deny.label}" denies everything its Allow statements admit`,
      ),
    );
  }
  return problems;
}
