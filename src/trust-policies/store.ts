import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import type { ClusterConfig } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { compilePolicy, hasErrors, type CompiledFile } from './compile.js';
import { duplicateProblems, listPolicyFiles, nameOf, PolicyLoadError, readPolicyFile, readProblem, type FileRead, type ValidFile } from './load.js';
import { buildPolicySet } from './set.js';
import { formatProblem, type Problem } from './source.js';
import type { PolicySet, PolicyStore } from './types.js';

export interface PolicyStoreOptions {
  dir: string;
  logger: Logger;
  metrics?: Pick<Metrics, 'policyReloads' | 'shadowDisagreements'>;
  /** Watch the directory and reload on change (default true). */
  watch?: boolean;
  /** Poll interval backing up the watcher (ConfigMap symlink swaps, network filesystems). */
  pollMs?: number;
  onReload?: (set: PolicySet) => void;
  /** Configured clusters; accepted for symmetry with loadPolicySet (lint checks principals). */
  clusters?: ClusterConfig[];
}

interface FileState {
  hash: string;
  /** The last version of this file that compiled; stays in force while the file is broken. */
  good?: ValidFile;
  /** Messages of the current failure, logged once. */
  failure?: string;
  /** The current version, valid but refused because another file holds its name: re-checked every pass. */
  blocked?: ValidFile;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** A read error has its own "hash", so it is reported once, like a parse error, until it changes. */
const hashOf = (read: Exclude<FileRead, 'gone'>) => ('error' in read ? `unreadable:${read.error}` : sha256(read.text));

/**
 * The policy set in force, reloaded when files change (within the poll interval, 1 s by
 * default). A file that fails keeps its last good version in force; a request keeps the set
 * it started with because sets are immutable and swapped whole.
 *
 * @example const store = createPolicyStore({ dir: './policies', logger });
 */
export function createPolicyStore(options: PolicyStoreOptions): PolicyStore & { reload(): boolean } {
  const { dir, logger, metrics } = options;
  const states = new Map<string, FileState>();
  const setOptions = { logger, ...(metrics ? { metrics } : {}) };

  /** Every listed file's text or read error; a file deleted after listing is left out. */
  const readAll = () => {
    const out = new Map<string, Exclude<FileRead, 'gone'>>();
    for (const path of listPolicyFiles(dir)) {
      const read = readPolicyFile(path);
      if (read !== 'gone') out.set(path, read);
    }
    return out;
  };

  // Start-up: every file must be good, and readable.
  let initial: Map<string, Exclude<FileRead, 'gone'>>;
  try {
    initial = readAll();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new PolicyLoadError([{ file: dir, line: 1, col: 1, severity: 'error', message: `cannot read policy directory: ${reason}` }]);
  }
  const compiled = [...initial].map(([path, read]): CompiledFile =>
    'error' in read ? { kind: 'invalid', file: path, problems: [readProblem(path, read.error)] } : compilePolicy(path, read.text),
  );
  const startupProblems = [...compiled.flatMap((file) => file.problems), ...duplicateProblems(compiled.filter((file): file is ValidFile => file.kind !== 'invalid'))];
  if (hasErrors(startupProblems)) throw new PolicyLoadError(startupProblems.filter((problem) => problem.severity === 'error'));
  for (const file of compiled) states.set(file.file, { hash: hashOf(initial.get(file.file) ?? { text: '' }), good: file as ValidFile });
  let current = buildPolicySet(goodFiles(), setOptions);
  logger.info({ dir, roles: [...current.roles.keys()], guardrails: current.guardrails.length, policyVersion: current.version }, 'trust policies loaded');

  function goodFiles(): ValidFile[] {
    return [...states.keys()].sort().flatMap((path) => {
      const good = states.get(path)?.good;
      return good ? [good] : [];
    });
  }

  function fail(path: string, state: FileState, problems: Problem[]) {
    const message = problems.filter((problem) => problem.severity === 'error').map(formatProblem).join('\n');
    metrics?.policyReloads.inc({ result: 'failure' });
    if (state.failure !== message) logger.error({ file: path }, `policy file not reloaded, last good version stays in force:\n${message}`);
    state.failure = message;
  }

  /** One reload pass; true when the set in force changed. */
  function reload(): boolean {
    let texts: Map<string, Exclude<FileRead, 'gone'>>;
    try {
      texts = readAll();
    } catch (error) {
      metrics?.policyReloads.inc({ result: 'failure' });
      logger.error({ dir, err: (error as NodeJS.ErrnoException).code }, 'cannot read the policy directory; policies in force are kept');
      return false;
    }
    let changed = false;
    for (const path of [...states.keys()]) {
      if (!texts.has(path)) {
        changed ||= states.get(path)?.good !== undefined;
        states.delete(path);
      }
    }
    for (const [path, read] of texts) {
      const hash = hashOf(read);
      const state = states.get(path) ?? { hash: '' };
      if (state.hash === hash) continue;
      state.hash = hash;
      states.set(path, state);
      // Unreadable is not deleted: the last good version stays in force (fail closed for guardrails).
      if ('error' in read) {
        fail(path, state, [readProblem(path, read.error)]);
        continue;
      }
      const file = compilePolicy(path, read.text);
      delete state.blocked;
      if (file.kind === 'invalid' || hasErrors(file.problems)) {
        fail(path, state, file.problems);
        continue;
      }
      const clash = nameClash(file);
      if (clash) {
        state.blocked = file;
        fail(path, state, [...file.problems, clash]);
        continue;
      }
      state.good = file;
      delete state.failure;
      changed = true;
    }
    changed = unblock() || changed;
    if (!changed) return false;
    current = buildPolicySet(goodFiles(), setOptions);
    metrics?.policyReloads.inc({ result: 'success' });
    logger.info({ dir, roles: [...current.roles.keys()], guardrails: current.guardrails.length, policyVersion: current.version }, 'trust policies reloaded');
    options.onReload?.(current);
    return true;
  }

  /**
   * A file refused for a name clash takes effect once the clash is gone (the role moved from
   * a.yaml to b.yaml: b was written first, then a deleted), in path order as at start-up, so the
   * set in force is the one a restart would load.
   */
  function unblock(): boolean {
    let changed = false;
    for (const path of [...states.keys()].sort()) {
      const state = states.get(path);
      if (!state?.blocked || nameClash(state.blocked)) continue;
      state.good = state.blocked;
      delete state.blocked;
      delete state.failure;
      changed = true;
    }
    return changed;
  }

  /** A changed file may not take a name another file already holds. */
  function nameClash(file: ValidFile): Problem | undefined {
    const name = nameOf(file);
    for (const [path, state] of states) {
      if (path !== file.file && state.good && nameOf(state.good) === name) {
        return file.source.problem(['metadata', 'name'], `${name} is also defined in ${path}`);
      }
    }
    return undefined;
  }

  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  const safeReload = () => {
    try {
      reload();
    } catch (error) {
      logger.error({ err: error }, 'policy reload failed');
    }
  };
  if (options.watch !== false) {
    try {
      watcher = watch(dir, () => {
        clearTimeout(debounce);
        debounce = setTimeout(safeReload, 50);
        debounce.unref();
      });
      watcher.on('error', () => undefined);
    } catch {
      // The poll below still reloads.
    }
    poll = setInterval(safeReload, options.pollMs ?? 1000);
    poll.unref();
  }

  return {
    current: () => current,
    failingFiles: () => [...states.values()].filter((state) => state.failure !== undefined).length,
    reload,
    async close() {
      watcher?.close();
      clearTimeout(debounce);
      clearInterval(poll);
    },
  };
}
