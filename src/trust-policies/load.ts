import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { compilePolicy, hasErrors, type CompiledFile } from './compile.js';
import { buildPolicySet } from './set.js';
import { formatProblem, type Problem } from './source.js';
import type { PolicySet } from './types.js';

/** A policy directory that cannot be loaded; `message` has one `file:line:col: message` per line. */
export class PolicyLoadError extends Error {
  constructor(readonly problems: Problem[]) {
    super(`invalid trust policies:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'PolicyLoadError';
  }
}

const POLICY_FILE = /\.(ya?ml|json)$/i;
/** The editor schema lives beside the policies; it is not one. */
const NOT_POLICIES = new Set(['schema.json']);

const exists = (path: string) => {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

/**
 * Policy files of `dir`, sorted; dot files (and Kubernetes ConfigMap `..data` links) skipped.
 * Symlinks are followed. An entry that cannot be examined (a dangling symlink, a symlink loop)
 * is listed so that reading it fails loudly: skipping it would silently drop its policies.
 */
export function listPolicyFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => POLICY_FILE.test(name) && !name.startsWith('.') && !NOT_POLICIES.has(name))
    .sort()
    .map((name) => join(dir, name))
    .filter((path) => {
      try {
        return statSync(path).isFile();
      } catch {
        // Gone since readdir: skip. Still there but unresolvable: keep, the read reports it.
        return exists(path);
      }
    });
}

/** A policy file's text, why it cannot be read, or `gone` when it was deleted after listing. */
export type FileRead = { text: string } | { error: string } | 'gone';

export function readPolicyFile(path: string): FileRead {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (error) {
    // ENOENT on a path that still exists is a dangling symlink: unreadable, not deleted.
    if (!exists(path)) return 'gone';
    const code = (error as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? 'ENOENT (dangling symlink)' : (code ?? String(error)) };
  }
}

export const readProblem = (path: string, reason: string): Problem => ({ file: path, line: 1, col: 1, severity: 'error', message: `cannot read file: ${reason}` });

export function compileFile(path: string): CompiledFile {
  const read = readPolicyFile(path);
  if (read === 'gone') return { kind: 'invalid', file: path, problems: [readProblem(path, 'ENOENT')] };
  if ('error' in read) return { kind: 'invalid', file: path, problems: [readProblem(path, read.error)] };
  return compilePolicy(path, read.text);
}

export type ValidFile = Extract<CompiledFile, { kind: 'Role' | 'Guardrail' }>;

export const nameOf = (file: ValidFile) => (file.kind === 'Role' ? `role "${file.role.name}"` : `guardrail "${file.guardrail.name}"`);

/** Problems between files: two roles (or guardrails) with one name. The later file is the bad one. */
export function duplicateProblems(files: readonly ValidFile[]): Problem[] {
  const seen = new Map<string, string>();
  const problems: Problem[] = [];
  for (const file of files) {
    const name = nameOf(file);
    const first = seen.get(name);
    if (first === undefined) seen.set(name, file.file);
    else problems.push(file.source.problem(['metadata', 'name'], `${name} is also defined in ${first}`));
  }
  return problems;
}

export interface LoadOptions {
  clusters?: ClusterConfig[];
  logger?: Logger;
  metrics?: Pick<Metrics, 'shadowDisagreements'>;
}

/**
 * Load and compile every policy file of `dir`. Any error is fatal (start-up): throws
 * {@link PolicyLoadError}; warnings are logged.
 *
 * @example const set = loadPolicySet('./policies');
 */
export function loadPolicySet(dir: string, options: LoadOptions = {}): PolicySet {
  let paths: string[];
  try {
    paths = listPolicyFiles(dir);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new PolicyLoadError([{ file: dir, line: 1, col: 1, severity: 'error', message: `cannot read policy directory: ${reason}` }]);
  }
  const compiled = paths.map(compileFile);
  const valid = compiled.filter((file): file is ValidFile => file.kind !== 'invalid');
  const problems = [...compiled.flatMap((file) => file.problems), ...duplicateProblems(valid)];
  if (hasErrors(problems)) throw new PolicyLoadError(problems.filter((problem) => problem.severity === 'error'));
  for (const warning of problems) options.logger?.warn({ file: warning.file, line: warning.line }, formatProblem(warning));
  return buildPolicySet(valid, options);
}
