import { formatDuration } from '../config/index.js';
import { escapeLines } from '../terminal/index.js';
import type { CompiledCondition, CompiledRole, CompiledStatement, PolicySet } from './types.js';
import { describePodCondition, isPodCondition } from './who-can-pod.js';

/**
 * `policy who-can`: a role's blast radius read from its statements — which clusters,
 * namespaces and service accounts an Allow admits (as patterns), and the Deny carve-outs.
 */

export interface AllowSummary {
  statement: string;
  clusters: string[];
  namespaces: string[];
  serviceAccounts: string[];
  /** `<ns>:<sa>` pairs from `…:sub` conditions. */
  subjects: string[];
  /** What pod attestation must report (images, signers, owner, labels), in words. */
  pod?: string[];
  /** Conditions that narrow further, in words. */
  also: string[];
}

export interface WhoCan {
  role: string;
  file: string;
  audiences: string[];
  maxLifetime: number;
  allows: AllowSummary[];
  denies: Array<{ statement: string; source: string; when: string[] }>;
}

const NAMESPACE = 'kubernetes.io/namespace';
const SERVICE_ACCOUNT = 'kubernetes.io/serviceaccount/name';
const SA_SUB = /^system:serviceaccount:([^:]+):([^:]+)$/;

const positive = (c: CompiledCondition) =>
  ['StringEquals', 'StringLike', 'StringEqualsIgnoreCase'].includes(c.baseOperator) &&
  !c.negated &&
  !c.qualifier;
const isSub = (c: CompiledCondition) => /:sub$/i.test(c.key) && !c.key.startsWith('token:');

/** An `…IfExists` condition also admits a token without the key; say so wherever it is listed. */
const ABSENT = ' (or key absent)';

/** A list of values; when one came from an IfExists condition, it admits the key's absence too. */
const withAbsent = (values: string[], ifExists: boolean) =>
  ifExists && values.length > 0 ? [...values.slice(0, -1), `${values.at(-1)}${ABSENT}`] : values;

/** A condition as the policy states it (operator, key, expected values), for the who-can listing. */
function conditionText(condition: CompiledCondition): string {
  if (condition.operator === 'Cel') return `Cel ${String(condition.expected[0])}`;
  return `${condition.operator} ${condition.key} ${condition.expected.map((value) => JSON.stringify(value)).join(' | ')}${condition.ifExists ? ABSENT : ''}`;
}

function summarize(statement: CompiledStatement): AllowSummary {
  const matching = (test: (c: CompiledCondition) => boolean) =>
    statement.conditions.filter((c) => positive(c) && test(c));
  const listed = (conditions: CompiledCondition[]) =>
    conditions.flatMap((c) => withAbsent(c.expected.map(String), c.ifExists));
  const namespaceConditions = matching((c) => c.key.toLowerCase() === NAMESPACE);
  const serviceAccountConditions = matching((c) => c.key.toLowerCase() === SERVICE_ACCOUNT);
  const subConditions = matching(isSub);
  const used = new Set([...namespaceConditions, ...serviceAccountConditions, ...subConditions]);
  const subsIfExists = subConditions.some((c) => c.ifExists);
  const fromSubs = subConditions
    .flatMap((c) => c.expected.map(String))
    .map((sub) => SA_SUB.exec(sub))
    .filter((m): m is RegExpExecArray => m !== null);
  const fromSub = (group: 1 | 2) =>
    withAbsent([...new Set(fromSubs.map((m) => m[group] as string))], subsIfExists);
  const namespaces = listed(namespaceConditions);
  const serviceAccounts = listed(serviceAccountConditions);
  const pod = statement.conditions.filter(isPodCondition).map(describePodCondition);
  return {
    statement: statement.label,
    clusters: statement.principals,
    namespaces: namespaces.length > 0 ? namespaces : fromSubs.length > 0 ? fromSub(1) : ['*'],
    serviceAccounts:
      serviceAccounts.length > 0 ? serviceAccounts : fromSubs.length > 0 ? fromSub(2) : ['*'],
    subjects: listed(subConditions),
    ...(pod.length > 0 ? { pod } : {}),
    also: statement.conditions.filter((c) => !used.has(c) && !isPodCondition(c)).map(conditionText),
  };
}

export function whoCan(set: PolicySet, role: CompiledRole): WhoCan {
  const guardrailDenies = set.guardrails.flatMap((guardrail) => guardrail.policy.statements);
  const denies = [
    ...guardrailDenies,
    ...role.trustPolicy.statements.filter((s) => s.effect === 'Deny'),
  ];
  return {
    role: role.name,
    file: role.file,
    audiences: role.issue.audiences,
    maxLifetime: role.issue.maxLifetime,
    allows: role.trustPolicy.statements.filter((s) => s.effect === 'Allow').map(summarize),
    denies: denies.map((statement) => ({
      statement: statement.label,
      source: statement.source,
      when: [
        ...(statement.principals.includes('*')
          ? []
          : [`cluster ${statement.principals.join(' | ')}`]),
        ...(statement.conditions.length > 0 ? statement.conditions.map(conditionText) : ['always']),
      ],
    })),
  };
}

export function formatWhoCan(result: WhoCan): string {
  const lines = [
    `role: ${result.role} (${result.file})`,
    `audiences: ${result.audiences.join(', ')}`,
    `max lifetime: ${formatDuration(result.maxLifetime)}`,
  ];
  if (result.allows.length === 0) lines.push('nobody: the trust policy has no Allow statement');
  for (const allow of result.allows) {
    lines.push(`allow ${allow.statement}:`);
    lines.push(`  clusters:         ${allow.clusters.join(', ')}`);
    lines.push(`  namespaces:       ${allow.namespaces.join(', ')}`);
    lines.push(`  service accounts: ${allow.serviceAccounts.join(', ')}`);
    if (allow.subjects.length > 0) lines.push(`  subjects:         ${allow.subjects.join(', ')}`);
    for (const pod of allow.pod ?? []) lines.push(`  pod:              ${pod}`);
    for (const also of allow.also) lines.push(`  and:              ${also}`);
  }
  if (result.denies.length > 0) lines.push('except (Deny):');
  for (const deny of result.denies)
    lines.push(`  [${deny.source}] ${deny.statement}: ${deny.when.join(' and ')}`);
  return escapeLines(lines);
}
