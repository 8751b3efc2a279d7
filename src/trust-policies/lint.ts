import type { ClusterConfig } from '../config/index.js';
import {
  AZURE_AUDIENCE,
  AZURE_MIN_LIFETIME_SECONDS,
  maxSubjectSize,
  pinnedBy,
  subjectLimitsFor,
} from './cloud-limits.js';
import { formatDuration } from '../config/index.js';
import { issuerHostPath, principalMatcher } from './principals.js';
import { parseIrsaKey } from './condition-keys.js';
import { compileFile, duplicateProblems, listPolicyFiles, type ValidFile } from './load.js';
import { podKeyProblems } from './lint-pod-keys.js';
import { globToRegExp } from './operators.js';
import type { Path, Problem } from './source.js';
import type { CompiledCondition, CompiledStatement } from './types.js';
import { policyVersion } from './version.js';

export interface LintOptions {
  /** When given, every Principal must name one of these clusters. */
  clusters?: ClusterConfig[];
  /** The broker's `audience`: what a cluster without its own `audiences` accepts. */
  audience?: string;
}

export interface LintResult {
  problems: Problem[];
  /** Files examined. */
  files: string[];
  /** The `policyVersion` the broker would report for this directory; absent when it would not load. */
  version?: string;
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
    ...(options.clusters ? irsaAudienceProblems(valid, options.clusters, options.audience) : []),
    ...(options.clusters ? podKeyProblems(valid, options.clusters) : []),
    ...unusableRoleProblems(valid),
    ...cloudProblems(valid),
  ];
  problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
  const loads =
    compiled.length === valid.length && !problems.some((problem) => problem.severity === 'error');
  return {
    problems,
    files,
    ...(loads ? { version: policyVersion(valid.map((file) => file.source)) } : {}),
  };
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

/** What breaks only at the cloud: subjects over AWS's or GCP's limit, tokens Azure would cache past their expiry. */
function cloudProblems(files: readonly ValidFile[]): Problem[] {
  const problems: Problem[] = [];
  for (const file of files) {
    if (file.kind !== 'Role') continue;
    const { issue } = file.raw;
    const statements = [file.raw.trustPolicy.Statement as unknown].flat() as Array<{
      Effect?: unknown;
      Condition?: unknown;
    }>;
    const allows = statements.filter((statement) => statement.Effect === 'Allow');
    for (const limit of subjectLimitsFor(issue.audiences)) {
      const size = Math.max(
        0,
        ...allows.map((statement) =>
          maxSubjectSize(issue.subject, pinnedBy(statement.Condition), limit.unit),
        ),
      );
      if (size <= limit.max) continue;
      const index = issue.audiences.findIndex((audience) => limit.targets(audience));
      const can = size === Infinity ? 'can be of any length' : `can be up to ${size} ${limit.unit}`;
      problems.push(
        file.source.problem(
          issue.subject !== undefined ? ['issue', 'subject'] : ['issue', 'audiences', index],
          `the subject ${can} but ${limit.what} allows at most ${limit.max} ${limit.unit} for audience "${issue.audiences[index]}": such exchanges will be refused`,
          { severity: 'warning' },
        ),
      );
    }
    const azure = issue.audiences.indexOf(AZURE_AUDIENCE);
    if (azure >= 0 && file.role.issue.defaultLifetime < AZURE_MIN_LIFETIME_SECONDS) {
      problems.push(
        file.source.problem(
          issue.defaultLifetime !== undefined
            ? ['issue', 'defaultLifetime']
            : ['issue', 'audiences', azure],
          `@azure/identity re-reads the token file only every 5 minutes: a role for "${AZURE_AUDIENCE}" needs a lifetime of at least ${formatDuration(AZURE_MIN_LIFETIME_SECONDS)}, not ${formatDuration(file.role.issue.defaultLifetime)}`,
          { severity: 'warning' },
        ),
      );
    }
  }
  return problems;
}

interface RawStatementList {
  field: string;
  statements: unknown;
}

function rawPolicies(file: ValidFile): RawStatementList[] {
  if (file.kind === 'Guardrail')
    return file.raw.policy ? [{ field: 'policy', statements: file.raw.policy.Statement }] : [];
  const out = [{ field: 'trustPolicy', statements: file.raw.trustPolicy.Statement as unknown }];
  if (file.raw.shadowTrustPolicy)
    out.push({ field: 'shadowTrustPolicy', statements: file.raw.shadowTrustPolicy.Statement });
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
          if (
            clusters.some((cluster) =>
              matches(cluster.name, cluster.issuer, issuerHostPath(cluster.issuer)),
            )
          )
            return;
          const path: Path = [
            field,
            'Statement',
            ...(Array.isArray(statements) ? [index] : []),
            'Principal',
            'Federated',
            ...(Array.isArray(federated) ? [j] : []),
          ];
          problems.push(
            file.source.problem(
              path,
              `Principal "${principal}" names no configured cluster (known: ${names})`,
            ),
          );
        });
      });
    }
  }
  return problems;
}

const LITERAL_OPERATORS = new Set(['StringEquals', 'StringEqualsIgnoreCase', 'StringLike']);

/** A role's compiled policies with the raw statement lists they came from, for positions. */
function compiledPolicies(
  file: ValidFile,
): Array<{ field: string; single: boolean; statements: readonly CompiledStatement[] }> {
  if (file.kind === 'Guardrail') return [];
  const out = [
    {
      field: 'trustPolicy',
      single: !Array.isArray(file.raw.trustPolicy.Statement),
      statements: file.role.trustPolicy.statements,
    },
  ];
  if (file.raw.shadowTrustPolicy && file.role.shadowTrustPolicy) {
    out.push({
      field: 'shadowTrustPolicy',
      single: !Array.isArray(file.raw.shadowTrustPolicy.Statement),
      statements: file.role.shadowTrustPolicy.statements,
    });
  }
  return out;
}

/**
 * An IRSA `<issuer>:aud` condition in an Allow statement that none of the cluster's accepted
 * audiences can satisfy: the subject token always carries one of those (the verifier refuses it
 * otherwise), so the statement can only match a token that also carries a foreign audience —
 * typically a trust policy pasted from EKS, where the pod's token is for `sts.amazonaws.com`.
 */
function irsaAudienceProblems(
  files: readonly ValidFile[],
  clusters: ClusterConfig[],
  audience: string | undefined,
): Problem[] {
  const problems: Problem[] = [];
  for (const file of files) {
    for (const { field, single, statements } of compiledPolicies(file)) {
      statements.forEach((statement, index) => {
        if (statement.effect !== 'Allow') return;
        for (const condition of statement.conditions) {
          const irsa = parseIrsaKey(condition.key);
          if (
            irsa?.claim !== 'aud' ||
            !LITERAL_OPERATORS.has(condition.baseOperator) ||
            condition.negated
          )
            continue;
          const cluster = clusters.find((entry) => issuerHostPath(entry.issuer) === irsa.hostPath);
          const accepted = cluster?.audiences ?? (audience === undefined ? undefined : [audience]);
          if (!cluster || !accepted || accepted.some((value) => valueMatches(condition, value)))
            continue;
          const expected = condition.expected
            .map((value) => JSON.stringify(String(value)))
            .join(', ');
          const path: Path = [
            field,
            'Statement',
            ...(single ? [] : [index]),
            'Condition',
            condition.operator,
            condition.key,
          ];
          problems.push(
            file.source.problem(
              path,
              `condition "${condition.key}" expects ${expected}, but cluster "${cluster.name}" accepts only subject tokens for ` +
                `${accepted.map((value) => JSON.stringify(value)).join(', ')}, so no token it accepts can match: check for the audience pods ` +
                `request for Tessera (${JSON.stringify(accepted[0])}) and issue ${expected} through issue.audiences`,
              { key: true },
            ),
          );
        }
      });
    }
  }
  return problems;
}

/** A plain, positive, single-valued string condition; the only kind whose implication is cheap to decide. */
const plain = (condition: CompiledCondition) =>
  LITERAL_OPERATORS.has(condition.baseOperator) &&
  !condition.negated &&
  !condition.qualifier &&
  !condition.ifExists;

function valueMatches(deny: CompiledCondition, value: string): boolean {
  return deny.expected.some((expected) => {
    const text = String(expected);
    if (deny.baseOperator === 'StringLike') return globToRegExp(text).test(value);
    if (deny.baseOperator === 'StringEqualsIgnoreCase')
      return text.toLowerCase() === value.toLowerCase();
    return text === value;
  });
}

/** Every request `allow` admits is denied by `deny` (conservative: false when unsure). */
function covers(deny: CompiledStatement, allow: CompiledStatement): boolean {
  if (!deny.actionMatches) return false;
  if (
    !deny.principals.includes('*') &&
    !allow.principals.every((principal) => deny.principals.includes(principal))
  )
    return false;
  return deny.conditions.every((denyCondition) => {
    if (!plain(denyCondition)) return false;
    return allow.conditions.some(
      (allowCondition) =>
        plain(allowCondition) &&
        allowCondition.key.toLowerCase() === denyCondition.key.toLowerCase() &&
        (allowCondition.baseOperator !== 'StringLike' ||
          allowCondition.expected.every((value) => !/[*?]/.test(String(value)))) &&
        allowCondition.expected.every((value) => valueMatches(denyCondition, String(value))),
    );
  });
}

function unusableRoleProblems(files: readonly ValidFile[]): Problem[] {
  const guardrails = files.flatMap((file) => (file.kind === 'Guardrail' ? [file.guardrail] : []));
  const problems: Problem[] = [];
  for (const file of files) {
    if (file.kind !== 'Role') continue;
    const allows = file.role.trustPolicy.statements.filter(
      (statement) => statement.effect === 'Allow',
    );
    if (allows.length === 0) continue;
    const blockers = allows.map((allow) =>
      guardrails
        .flatMap((guardrail) => guardrail.policy.statements.map((deny) => ({ guardrail, deny })))
        .find(({ deny }) => covers(deny, allow)),
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
