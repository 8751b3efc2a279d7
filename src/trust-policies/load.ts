import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, statSync, type BigIntStats } from 'node:fs';
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
  return examinePolicyFiles(dir).map(({ path }) => path);
}

/** A listed policy file and, when it could be examined, what `stat` says of it (symlinks followed). */
interface ListedFile {
  path: string;
  stats?: BigIntStats;
}

function examinePolicyFiles(dir: string): ListedFile[] {
  return readdirSync(dir)
    .filter((name) => POLICY_FILE.test(name) && !name.startsWith('.') && !NOT_POLICIES.has(name))
    .sort()
    .flatMap((name): ListedFile[] => {
      const path = join(dir, name);
      try {
        const stats = statSync(path, { bigint: true });
        return stats.isFile() ? [{ path, stats }] : [];
      } catch {
        // Gone since readdir: skip. Still there but unresolvable: keep, the read reports it.
        return exists(path) ? [{ path }] : [];
      }
    });
}

/**
 * How long after a file's last change (its ctime, which no tool can set back) its stamp is not
 * trusted. File timestamps are coarse (a kernel tick locally, up to 2 s on some filesystems): a
 * same-size rewrite inside one tick leaves the stamp as it was, so a file is read again until its
 * last change is older than this (the "racily clean" rule of git's index).
 */
export const RACY_WINDOW_MS = 3000;

/**
 * The stat fields that change with a file's content: device and inode (a ConfigMap swap or an
 * atomic rename points at another file), size, and mtime and ctime in nanoseconds. Undefined while
 * the file changed too recently to be trusted ({@link RACY_WINDOW_MS}).
 */
function stampOf(stats: BigIntStats, nowMs: number): string | undefined {
  if (Number(stats.ctimeNs / 1_000_000n) > nowMs - RACY_WINDOW_MS) return undefined;
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
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

/** A listed file as a scan found it: read, or left unread because its stamp is the one it had. */
export type ScannedFile =
  { read: PresentFile; stamp?: string } | { read?: undefined; stamp: string };

export interface ScanOptions {
  /** Each file's stamp when it was last read: a file whose stamp is unchanged is not read again. */
  known?: ReadonlyMap<string, string | undefined>;
  /** Milliseconds since the epoch (`Date.now`). */
  now?: () => number;
}

/**
 * Every listed file's text or read error, by path; throws {@link PolicyLoadError} when `dir`
 * cannot be listed. With `known` stamps, a file that has not changed since is only examined: the
 * poll that backs up the directory watch then costs one `stat` per file, not a read and a hash
 * (with 1,000 files, about 19 ms of blocked event loop every second).
 */
export function readPolicyDirectory(
  dir: string,
  options: ScanOptions = {},
): Map<string, ScannedFile> {
  let listed: ListedFile[];
  try {
    listed = examinePolicyFiles(dir);
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
  const nowMs = (options.now ?? Date.now)();
  const files = new Map<string, ScannedFile>();
  for (const { path, stats } of listed) {
    const stamp = stats && stampOf(stats, nowMs);
    if (stamp !== undefined && options.known?.get(path) === stamp) {
      files.set(path, { stamp });
      continue;
    }
    const read = readPolicyFile(path);
    if (read !== 'gone') files.set(path, stamp === undefined ? { read } : { read, stamp });
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

/** One file of a loaded directory, with the hash of the text it was compiled from and its stamp then. */
export interface LoadedFile {
  hash: string;
  stamp?: string;
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
  const scanned = readPolicyDirectory(dir);
  const reads = new Map(
    [...scanned].flatMap(([path, { read }]): Array<[string, PresentFile]> =>
      read ? [[path, read]] : [],
    ),
  );
  const compiled = [...reads].map(([path, read]) => compileRead(path, read));
  const valid = compiled.filter((file): file is ValidFile => file.kind !== 'invalid');
  const problems = [...compiled.flatMap((file) => file.problems), ...duplicateProblems(valid)];
  if (hasErrors(problems))
    throw new PolicyLoadError(problems.filter((problem) => problem.severity === 'error'));
  for (const warning of problems)
    options.logger?.warn({ file: warning.file, line: warning.line }, formatProblem(warning));
  const files = valid.map((file): LoadedFile => {
    const stamp = scanned.get(file.file)?.stamp;
    return {
      hash: contentHash(reads.get(file.file) ?? { text: '' }),
      ...(stamp !== undefined && { stamp }),
      file,
    };
  });
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
