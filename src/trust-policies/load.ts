import { createHash } from 'node:crypto';
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
  readonly problems: Problem[];

  constructor(problems: Problem[]) {
    super(`invalid trust policies:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'PolicyLoadError';
    this.problems = problems;
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

function readPolicyFile(path: string): FileRead {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (error) {
    // ENOENT on a path that still exists is a dangling symlink: unreadable, not deleted.
    if (!exists(path)) return 'gone';
    const code = (error as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? 'ENOENT (dangling symlink)' : (code ?? String(error)) };
  }
}

export const readProblem = (path: string, reason: string): Problem => ({
  file: path,
  line: 1,
  col: 1,
  severity: 'error',
  message: `cannot read file: ${reason}`,
});

export function compileFile(path: string): CompiledFile {
  const read = readPolicyFile(path);
  if (read === 'gone')
    return { kind: 'invalid', file: path, problems: [readProblem(path, 'ENOENT')] };
  if ('error' in read)
    return { kind: 'invalid', file: path, problems: [readProblem(path, read.error)] };
  return compilePolicy(path, read.text);
}

export type ValidFile = Extract<CompiledFile, { kind: 'Role' | 'Guardrail' }>;

export const nameOf = (file: ValidFile) =>
  file.kind === 'Role' ? `role "${file.role.name}"` : `guardrail "${file.guardrail.name}"`;

/** Problems between files: two roles (or guardrails) with one name. The later file is the bad one. */
export function duplicateProblems(files: readonly ValidFile[]): Problem[] {
  const seen = new Map<string, string>();
  const problems: Problem[] = [];
  for (const file of files) {
    const name = nameOf(file);
    const first = seen.get(name);
    if (first === undefined) seen.set(name, file.file);
    else
      problems.push(
        file.source.problem(['metadata', 'name'], `${name} is also defined in ${first}`),
      );
  }
  return problems;
}

export interface LoadOptions {
  clusters?: ClusterConfig[];
  logger?: Logger;
  metrics?: Pick<Metrics, 'shadowDisagreements'>;
}

/** A readable or unreadable policy file; files deleted since the listing are left out. */
export type PresentFile = Exclude<FileRead, 'gone'>;

/** Every listed file's text or read error, by path; throws {@link PolicyLoadError} when `dir` cannot be listed. */
export function readPolicyDirectory(dir: string): Map<string, PresentFile> {
  let paths: string[];
  try {
    paths = listPolicyFiles(dir);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new PolicyLoadError([
      {
        file: dir,
        line: 1,
        col: 1,
        severity: 'error',
        message: `cannot read policy directory: ${reason}`,
      },
    ]);
  }
  const files = new Map<string, PresentFile>();
  for (const path of paths) {
    const read = readPolicyFile(path);
    if (read !== 'gone') files.set(path, read);
  }
  return files;
}

/** The compiled file, or an invalid one carrying why it could not be read. */
function compileRead(path: string, read: PresentFile): CompiledFile {
  return 'error' in read
    ? { kind: 'invalid', file: path, problems: [readProblem(path, read.error)] }
    : compilePolicy(path, read.text);
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** A file's identity for change detection; a read error has its own, so it is reported once until it changes. */
export const contentHash = (read: PresentFile): string =>
  'error' in read ? `unreadable:${read.error}` : sha256(read.text);

/** One file of a loaded directory, with the hash of the text it was compiled from. */
export interface LoadedFile {
  hash: string;
  file: ValidFile;
}

/**
 * The one start-up path, for the server's store and the `policy` and `config` commands alike:
 * read and compile every policy file of `dir`; any error (an unreadable file, a duplicate name)
 * is fatal and throws {@link PolicyLoadError}; warnings are logged.
 */
export function loadDirectory(
  dir: string,
  options: LoadOptions = {},
): { set: PolicySet; files: LoadedFile[] } {
  const reads = readPolicyDirectory(dir);
  const compiled = [...reads].map(([path, read]) => compileRead(path, read));
  const valid = compiled.filter((file): file is ValidFile => file.kind !== 'invalid');
  const problems = [...compiled.flatMap((file) => file.problems), ...duplicateProblems(valid)];
  if (hasErrors(problems))
    throw new PolicyLoadError(problems.filter((problem) => problem.severity === 'error'));
  for (const warning of problems)
    options.logger?.warn({ file: warning.file, line: warning.line }, formatProblem(warning));
  const files = valid.map((file) => ({
    hash: contentHash(reads.get(file.file) ?? { text: '' }),
    file,
  }));
  return { set: buildPolicySet(valid, options), files };
}

/**
 * Load and compile every policy file of `dir` (see {@link loadDirectory}).
 *
 * @example const set = loadPolicySet('./policies');
 */
export function loadPolicySet(dir: string, options: LoadOptions = {}): PolicySet {
  return loadDirectory(dir, options).set;
}
