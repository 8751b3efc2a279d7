import { watch, type FSWatcher } from 'node:fs';
import type { ClusterConfig } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import { compilePolicy, hasErrors } from './compile.js';
import {
  contentHash,
  loadDirectory,
  nameOf,
  PolicyLoadError,
  readPolicyDirectory,
  readProblem,
  type ScannedFile,
  type ValidFile,
} from './load.js';
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
  /** Configured clusters, as for loadPolicySet. */
  clusters?: ClusterConfig[];
  /** Milliseconds since the epoch (`Date.now`), against which a file's last change is judged. */
  now?: () => number;
}

interface FileState {
  hash: string;
  /** The file's stamp when it was last read; undefined while it is too fresh to be trusted. */
  stamp?: string;
  /** The last version of this file that compiled; stays in force while the file is broken. */
  good?: ValidFile;
  /** Messages of the current failure, logged once. */
  failure?: string;
  /** The current version, valid but refused because another file holds its name: re-checked every pass. */
  blocked?: ValidFile;
}

/** The store's state: each file's last good version, and the set built from them. */
interface StoreState {
  readonly options: PolicyStoreOptions;
  readonly files: Map<string, FileState>;
  current: PolicySet;
}

/**
 * The policy set in force, reloaded when files change (within the poll interval, 1 s by
 * default). Start-up goes through `loadDirectory`, as `loadPolicySet` does: every file must be
 * good. Afterwards a file that fails keeps its last good version in force; a request keeps the
 * set it started with because sets are immutable and swapped whole.
 *
 * @example const store = createPolicyStore({ dir: './policies', logger });
 */
export function createPolicyStore(
  options: PolicyStoreOptions,
): PolicyStore & { reload(): boolean } {
  const { dir, logger, metrics, clusters } = options;
  const loaded = loadDirectory(dir, {
    logger,
    ...(metrics ? { metrics } : {}),
    ...(clusters ? { clusters } : {}),
  });
  const state: StoreState = {
    options,
    files: new Map(
      loaded.files.map(({ hash, stamp, file }) => [
        file.file,
        { hash, good: file, ...(stamp !== undefined && { stamp }) },
      ]),
    ),
    current: loaded.set,
  };
  logSet(state, 'trust policies loaded');
  const stopWatching = options.watch === false ? () => undefined : watchDirectory(state);
  return {
    current: () => state.current,
    failingFiles: () =>
      [...state.files.values()].filter((file) => file.failure !== undefined).length,
    reload: () => reload(state),
    close() {
      stopWatching();
      return Promise.resolve();
    },
  };
}

function logSet(state: StoreState, message: string): void {
  const { current } = state;
  state.options.logger.info(
    {
      dir: state.options.dir,
      roles: [...current.roles.keys()],
      guardrails: current.guardrails.length,
      policyVersion: current.version,
    },
    message,
  );
}

/** One reload pass; true when the set in force changed. */
function reload(state: StoreState): boolean {
  const { dir, logger, metrics } = state.options;
  let reads: Map<string, ScannedFile>;
  try {
    const known = new Map([...state.files].map(([path, file]) => [path, file.stamp]));
    reads = readPolicyDirectory(dir, {
      known,
      ...(state.options.now && { now: state.options.now }),
    });
  } catch (error) {
    metrics?.policyReloads.inc({ result: 'failure' });
    logger.error(
      { dir, err: error instanceof PolicyLoadError ? error.problems[0]?.message : String(error) },
      'cannot read the policy directory; policies in force are kept',
    );
    return false;
  }
  let changed = dropDeleted(state, reads);
  for (const [path, read] of reads) changed = applyFile(state, path, read) || changed;
  changed = unblock(state) || changed;
  if (!changed) return false;
  state.current = buildPolicySet(goodFiles(state), { logger, ...(metrics ? { metrics } : {}) });
  metrics?.policyReloads.inc({ result: 'success' });
  logSet(state, 'trust policies reloaded');
  state.options.onReload?.(state.current);
  return true;
}

/** Forgets files no longer listed; true when one of them was in force. */
function dropDeleted(state: StoreState, reads: Map<string, ScannedFile>): boolean {
  let changed = false;
  for (const [path, file] of [...state.files]) {
    if (reads.has(path)) continue;
    changed ||= file.good !== undefined;
    state.files.delete(path);
  }
  return changed;
}

/** Takes a changed file into account; true when its new version is now in force. */
function applyFile(state: StoreState, path: string, scanned: ScannedFile): boolean {
  const { read, stamp } = scanned;
  if (!read) return false;
  const hash = contentHash(read);
  const file = state.files.get(path) ?? { hash: '' };
  if (stamp === undefined) delete file.stamp;
  else file.stamp = stamp;
  state.files.set(path, file);
  if (file.hash === hash) return false;
  file.hash = hash;
  // Unreadable is not deleted: the last good version stays in force (fail closed for guardrails).
  if ('error' in read) {
    fail(state, path, file, [readProblem(path, read.error)]);
    return false;
  }
  const compiled = compilePolicy(path, read.text);
  delete file.blocked;
  if (compiled.kind === 'invalid' || hasErrors(compiled.problems)) {
    fail(state, path, file, compiled.problems);
    return false;
  }
  const clash = nameClash(state, compiled);
  if (clash) {
    file.blocked = compiled;
    fail(state, path, file, [...compiled.problems, clash]);
    return false;
  }
  file.good = compiled;
  delete file.failure;
  return true;
}

function fail(state: StoreState, path: string, file: FileState, problems: Problem[]): void {
  const message = problems
    .filter((problem) => problem.severity === 'error')
    .map(formatProblem)
    .join('\n');
  state.options.metrics?.policyReloads.inc({ result: 'failure' });
  if (file.failure !== message)
    state.options.logger.error(
      { file: path },
      `policy file not reloaded, last good version stays in force:\n${message}`,
    );
  file.failure = message;
}

function goodFiles(state: StoreState): ValidFile[] {
  return [...state.files.keys()].sort().flatMap((path) => {
    const good = state.files.get(path)?.good;
    return good ? [good] : [];
  });
}

/**
 * A file refused for a name clash takes effect once the clash is gone (the role moved from
 * a.yaml to b.yaml: b was written first, then a deleted), in path order as at start-up, so the
 * set in force is the one a restart would load.
 */
function unblock(state: StoreState): boolean {
  let changed = false;
  for (const path of [...state.files.keys()].sort()) {
    const file = state.files.get(path);
    if (!file?.blocked || nameClash(state, file.blocked)) continue;
    file.good = file.blocked;
    delete file.blocked;
    delete file.failure;
    changed = true;
  }
  return changed;
}

/** A changed file may not take a name another file already holds. */
function nameClash(state: StoreState, file: ValidFile): Problem | undefined {
  const name = nameOf(file);
  for (const [path, other] of state.files) {
    if (path !== file.file && other.good && nameOf(other.good) === name) {
      return file.source.problem(['metadata', 'name'], `${name} is also defined in ${path}`);
    }
  }
  return undefined;
}

/** Reloads on a watch event (debounced) and on every poll; returns what stops both. */
function watchDirectory(state: StoreState): () => void {
  const { dir, logger, pollMs } = state.options;
  const safeReload = (): void => {
    try {
      reload(state);
    } catch (error) {
      logger.error({ err: error }, 'policy reload failed');
    }
  };
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
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
  const poll = setInterval(safeReload, pollMs ?? 1000);
  poll.unref();
  return () => {
    watcher?.close();
    clearTimeout(debounce);
    clearInterval(poll);
  };
}
