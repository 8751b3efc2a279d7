import type { z } from 'zod';
import { formatDuration, formatPath } from '../config/index.js';
import {
  guardrailFileSchema,
  HARD_MAX_LIFETIME,
  roleFileSchema,
  type GuardrailFile,
  type RoleFile,
} from './schema.js';
import { AWS_TAGS_CLAIM, compileSessionTags } from './session-tags.js';
import { parseSource, type Path, type PolicySource, type Problem } from './source.js';
import { compilePolicyDocument } from './statement.js';
import { compileTemplate, compileTree, type TemplateContext } from './template.js';
import type { CompiledGuardrail, CompiledRole, IssueProfile, Template } from './types.js';

/** A file compiled on its own; cross-file checks happen when the set is assembled. */
export type CompiledFile =
  | {
      kind: 'Role';
      file: string;
      source: PolicySource;
      role: CompiledRole;
      raw: RoleFile;
      problems: Problem[];
    }
  | {
      kind: 'Guardrail';
      file: string;
      source: PolicySource;
      guardrail: CompiledGuardrail;
      raw: GuardrailFile;
      problems: Problem[];
    }
  | { kind: 'invalid'; file: string; problems: Problem[] };

/**
 * Claims a role's `issue.claims` may not set: the registered JWT claims, the ones Tessera owns
 * (`scope`, `act`, `kubernetes.io`, `tessera`) and the ones relying parties treat as identity
 * or binding (`cnf`, `azp`). A template could otherwise forge a scope, a delegation or a subject.
 */
export const RESERVED_CLAIMS: readonly string[] = [
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'scope',
  'act',
  'cnf',
  'azp',
  'kubernetes.io',
  'tessera',
];

export const hasErrors = (problems: readonly Problem[]) =>
  problems.some((problem) => problem.severity === 'error');

/** Parse, validate and compile one policy file. Never throws: problems carry positions. */
export function compilePolicy(file: string, text: string): CompiledFile {
  const source = parseSource(file, text);
  if (source.syntax.length > 0) return { kind: 'invalid', file, problems: source.syntax };
  const data = source.data as Record<string, unknown> | null;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return {
      kind: 'invalid',
      file,
      problems: [source.problem([], 'a policy file must be a mapping')],
    };
  }
  if (data.kind !== 'Role' && data.kind !== 'Guardrail') {
    const message =
      data.kind === undefined
        ? 'kind is required (Role or Guardrail)'
        : `kind must be Role or Guardrail, not ${JSON.stringify(data.kind)}`;
    return {
      kind: 'invalid',
      file,
      problems: [source.problem(data.kind === undefined ? [] : ['kind'], message)],
    };
  }
  const schema = data.kind === 'Role' ? roleFileSchema : guardrailFileSchema;
  // reportInput: a missing field is told apart by its issue's input, not by the message's wording.
  const parsed = schema.safeParse(data, { reportInput: true });
  if (!parsed.success)
    return { kind: 'invalid', file, problems: zodProblems(source, parsed.error.issues) };
  const problems: Problem[] = [];
  const report = (
    path: Path,
    message: string,
    options: { key?: boolean; severity?: 'error' | 'warning' } = {},
  ) => problems.push(source.problem(path, message, options));
  if (parsed.data.kind === 'Role') {
    const role = compileRole(file, parsed.data, report);
    return { kind: 'Role', file, source, role, raw: parsed.data, problems };
  }
  const guardrail = compileGuardrail(file, parsed.data, report);
  return { kind: 'Guardrail', file, source, guardrail, raw: parsed.data, problems };
}

type Reporter = (
  path: Path,
  message: string,
  options?: { key?: boolean; severity?: 'error' | 'warning' },
) => void;

function statementReporter(report: Reporter, field: string) {
  return (
    index: number | undefined,
    path: Path,
    message: string,
    options?: { key?: boolean; severity?: 'error' | 'warning' },
  ) =>
    report(
      [field, 'Statement', ...(index === undefined ? [] : [index]), ...path],
      message,
      options,
    );
}

function compileRole(file: string, raw: RoleFile, report: Reporter): CompiledRole {
  const name = raw.metadata.name;
  const trustPolicy = compilePolicyDocument(
    raw.trustPolicy,
    `role:${name}`,
    statementReporter(report, 'trustPolicy'),
  );
  const shadowTrustPolicy = raw.shadowTrustPolicy
    ? compilePolicyDocument(
        raw.shadowTrustPolicy,
        `shadow:${name}`,
        statementReporter(report, 'shadowTrustPolicy'),
      )
    : undefined;
  return {
    name,
    file,
    issue: compileIssue(raw.issue, report),
    trustPolicy,
    ...(shadowTrustPolicy ? { shadowTrustPolicy } : {}),
  };
}

function checkLifetime(seconds: number, path: Path, report: Reporter) {
  if (seconds > HARD_MAX_LIFETIME) {
    report(
      path,
      `${path[path.length - 1]} ${formatDuration(seconds)} is above the hard cap of ${formatDuration(HARD_MAX_LIFETIME)}`,
    );
  } else if (seconds <= 0) report(path, `${path[path.length - 1]} must be positive`);
}

function template(text: string, path: Path, report: Reporter, context: TemplateContext): Template {
  const compiled = compileTemplate(text, context);
  if (typeof compiled === 'string') {
    report(path, compiled);
    return () => '';
  }
  return compiled;
}

function compileIssue(issue: RoleFile['issue'], report: Reporter): IssueProfile {
  const defaultLifetime = checkedLifetimes(issue, report);
  reportReservedClaims(issue.claims, report);
  const x509 = issue.x509 ? compileX509(issue.x509, report) : undefined;
  return {
    audiences: issue.audiences,
    algorithm: issue.algorithm,
    maxLifetime: Math.min(issue.maxLifetime, HARD_MAX_LIFETIME),
    defaultLifetime: Math.min(defaultLifetime, issue.maxLifetime, HARD_MAX_LIFETIME),
    ...(issue.subject !== undefined
      ? { subject: template(issue.subject, ['issue', 'subject'], report, 'subject') }
      : {}),
    claims: compileClaims(issue.claims, report),
    ...(issue.scopes ? { scopes: issue.scopes } : {}),
    ...(x509 ? { x509 } : {}),
  };
}

/** Checks both lifetimes and returns the default one (15 minutes, or maxLifetime when shorter). */
function checkedLifetimes(issue: RoleFile['issue'], report: Reporter): number {
  checkLifetime(issue.maxLifetime, ['issue', 'maxLifetime'], report);
  if (issue.defaultLifetime === undefined) return Math.min(900, issue.maxLifetime);
  checkLifetime(issue.defaultLifetime, ['issue', 'defaultLifetime'], report);
  if (issue.defaultLifetime > issue.maxLifetime) {
    report(
      ['issue', 'defaultLifetime'],
      `defaultLifetime ${formatDuration(issue.defaultLifetime)} is above maxLifetime ${formatDuration(issue.maxLifetime)}`,
    );
  }
  return issue.defaultLifetime;
}

const RESERVED_CLAIM_HINTS: Record<string, string> = {
  sub: ' (use issue.subject)',
  aud: ' (use issue.audiences)',
  exp: ' (use issue.maxLifetime)',
};

function reportReservedClaims(claims: RoleFile['issue']['claims'], report: Reporter): void {
  for (const name of Object.keys(claims ?? {})) {
    if (RESERVED_CLAIMS.includes(name)) {
      report(
        ['issue', 'claims', name],
        `claim "${name}" is set by Tessera; a role cannot set it${RESERVED_CLAIM_HINTS[name] ?? ''}`,
        { key: true },
      );
    }
  }
}

function compileClaims(
  claims: RoleFile['issue']['claims'],
  report: Reporter,
): IssueProfile['claims'] {
  const { [AWS_TAGS_CLAIM]: tags, ...plainClaims } = claims ?? {};
  const claimsTree = compileTree(plainClaims, (path, message) =>
    report(['issue', 'claims', ...path], message),
  );
  const sessionTags =
    tags === undefined
      ? undefined
      : compileSessionTags(tags, (path, message, options) =>
          report(['issue', 'claims', AWS_TAGS_CLAIM, ...path], message, options),
        );
  return sessionTags
    ? (vars) => ({
        ...(claimsTree(vars) as Record<string, unknown>),
        [AWS_TAGS_CLAIM]: sessionTags(vars),
      })
    : (vars) => claimsTree(vars) as Record<string, unknown>;
}

function compileX509(
  x509: NonNullable<RoleFile['issue']['x509']>,
  report: Reporter,
): NonNullable<IssueProfile['x509']> {
  checkLifetime(x509.maxTtl, ['issue', 'x509', 'maxTtl'], report);
  return {
    spiffeId: template(x509.spiffeId, ['issue', 'x509', 'spiffeId'], report, 'spiffeId'),
    maxTtl: x509.maxTtl,
    dnsNames: x509.dnsNames.map((name, index) =>
      template(name, ['issue', 'x509', 'dnsNames', index], report, 'dnsName'),
    ),
  };
}

function compileGuardrail(file: string, raw: GuardrailFile, report: Reporter): CompiledGuardrail {
  const name = raw.metadata.name;
  const policy = compilePolicyDocument(
    raw.policy,
    `guardrail:${name}`,
    statementReporter(report, 'policy'),
  );
  if (raw.maxLifetime !== undefined) checkLifetime(raw.maxLifetime, ['maxLifetime'], report);
  if (!raw.policy && raw.maxLifetime === undefined)
    report([], 'a guardrail needs a policy, a maxLifetime or both', { severity: 'warning' });
  return {
    name,
    file,
    policy,
    ...(raw.maxLifetime !== undefined ? { maxLifetime: raw.maxLifetime } : {}),
  };
}

/**
 * For a union (`Statement: one | [many]`), zod reports every branch; the branch that got
 * furthest into the input is the one the author meant.
 */
function bestBranch(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [issue];
  const depth = (branch: z.core.$ZodIssue[]) =>
    Math.max(...branch.map((inner) => inner.path.length));
  const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
  if (depth(best) === 0) return [issue];
  return best
    .map((inner) => ({ ...inner, path: [...issue.path, ...inner.path] }))
    .flatMap(bestBranch);
}

function zodProblems(source: PolicySource, issues: ReadonlyArray<z.core.$ZodIssue>): Problem[] {
  return issues.flatMap(bestBranch).flatMap((issue) => {
    const path = issue.path.filter((part): part is string | number => typeof part !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) =>
        source.problem([...path, key], `${formatPath([...path, key])}: unknown field`, {
          key: true,
        }),
      );
    }
    const message =
      issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
    return [source.problem(path, `${formatPath(path)}: ${message}`)];
  });
}
