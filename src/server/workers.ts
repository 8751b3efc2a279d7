import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../observability/index.js';
import { SHUTDOWN_DEADLINE_SECONDS } from './lifecycle.js';

/** `--workers N|auto`: auto is one per CPU the process may use. */
export function workerCount(value: number | 'auto'): number {
  return value === 'auto' ? availableParallelism() : value;
}

/** A worker that dies within this of its start counts toward the restart backoff. */
const QUICK_DEATH_MS = 10_000;
const MAX_RESTART_DELAY_MS = 10_000;

export interface PrimaryOptions {
  count: number;
  logger: Logger;
  drainSeconds: number;
  exit: (code: number) => void;
  /**
   * Runs once before any worker starts: creates the keys, CA and dev-cluster keys on disk, so
   * workers find them and never race each other to create a first key.
   */
  prepare: () => Promise<void>;
}

/**
 * The primary of `tessera serve --workers N`: forks N workers that share the listeners (node:cluster
 * hands connections out round-robin), replaces a worker that dies, and on SIGTERM or SIGINT asks
 * every worker to stop as that signal would and exits once every worker has drained; SIGHUP asks
 * every worker to reopen its audit file. Workers read the same key directory or HSM, so they
 * publish one JWKS; each has its own HSM sessions and Redis connection.
 */
export async function runPrimary(options: PrimaryOptions): Promise<void> {
  const { logger } = options;
  await options.prepare();
  let stopping = false;
  let failures = 0;
  const started = new Map<number, number>();

  const fork = (): Worker => {
    const worker = cluster.fork();
    started.set(worker.id, Date.now());
    logger.info({ worker: worker.id, pid: worker.process.pid }, 'worker started');
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (started.get(worker.id) ?? 0);
    started.delete(worker.id);
    if (stopping) {
      logger.info({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker stopped');
      if (code !== 0) failures += 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info('shutdown: every worker stopped');
        options.exit(failures === 0 ? 0 : 1);
      }
      return;
    }
    const quick = lived < QUICK_DEATH_MS;
    failures = quick ? failures + 1 : 0;
    // A worker that cannot start (port taken, bad key file) must not be restarted in a hot loop.
    const delay = quick ? Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** Math.min(failures, 7)) : 0;
    logger.warn(
      { worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delay },
      'worker died; starting a replacement',
    );
    setTimeout(() => {
      if (!stopping) fork();
    }, delay);
  });

  const stop = (signal: NodeJS.Signals) => {
    const workers = Object.values(cluster.workers ?? {}).filter(
      (worker): worker is Worker => worker !== undefined,
    );
    if (stopping) {
      logger.warn({ signal }, 'shutdown: second signal, stopping workers now');
      for (const worker of workers) worker.process.kill('SIGKILL');
      options.exit(1);
      return;
    }
    stopping = true;
    failures = 0;
    logger.info(
      { signal, workers: workers.length, drainSeconds: options.drainSeconds },
      'shutdown: stopping workers',
    );
    if (workers.length === 0) options.exit(0);
    for (const worker of workers) requestStop(worker, signal);
    setTimeout(
      () => {
        logger.error('shutdown: workers did not stop in time');
        for (const worker of workers) worker.process.kill('SIGKILL');
        options.exit(1);
      },
      (options.drainSeconds + SHUTDOWN_DEADLINE_SECONDS + 1) * 1000,
    ).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The primary writes no audit events: it passes log rotation's SIGHUP on to the workers.
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {}))
      if (worker?.isConnected()) worker.send(REOPEN_REQUEST, () => undefined);
  });

  for (let index = 0; index < options.count; index += 1) fork();
}

/** What the primary sends every worker on SIGHUP: open the audit file again. */
const REOPEN_REQUEST = { tessera: 'reopen' } as const;

/**
 * In a worker: `reopen` runs on the primary's SIGHUP request, as on a SIGHUP of its own (a signal
 * to the process group brings both: reopening twice does no harm).
 */
export function onReopenRequest(
  reopen: () => void,
  channel: Pick<NodeJS.EventEmitter, 'on'> = process,
): void {
  channel.on('message', (message: unknown) => {
    if (requestKind(message) === REOPEN_REQUEST.tessera) reopen();
  });
}

/** What a message on the cluster channel asks of a worker (`tessera`), if it is one of ours. */
const requestKind = (message: unknown): unknown =>
  typeof message === 'object' && message !== null
    ? (message as { tessera?: unknown }).tessera
    : undefined;

/** What the primary sends a worker to stop it: the signal the primary received. */
interface StopRequest {
  tessera: 'stop';
  signal: NodeJS.Signals;
}

function isStopRequest(message: unknown): message is StopRequest {
  if (requestKind(message) !== 'stop') return false;
  const { signal } = message as Partial<StopRequest>;
  return signal === 'SIGTERM' || signal === 'SIGINT';
}

/**
 * A message rather than the signal itself: Ctrl-C in a terminal (or a kill of the process group)
 * has already signalled every worker, and the same signal again would be the "second signal" that
 * cuts a drain short. A worker the message cannot reach gets the signal.
 */
function requestStop(worker: Worker, signal: NodeJS.Signals): void {
  if (!worker.isConnected()) {
    worker.process.kill(signal);
    return;
  }
  worker.send({ tessera: 'stop', signal } satisfies StopRequest, (error: Error | null) => {
    if (error) worker.process.kill(signal);
  });
}

/**
 * In a worker: the primary's stop request (a message on `channel`, the process's cluster channel)
 * starts `shutdown` as the signal it names would. The same signal reaching the worker directly as
 * well (Ctrl-C signals the whole process group) is that one request, whichever of the two comes
 * first; only another signal after it is a second one, which exits at once.
 *
 * @example const onSignal = workerStop(shutdown); process.on('SIGTERM', () => onSignal('SIGTERM'));
 */
export function workerStop(
  shutdown: (signal: string) => void,
  channel: Pick<NodeJS.EventEmitter, 'on'> = process,
): (signal: NodeJS.Signals) => void {
  let requested: NodeJS.Signals | undefined;
  let stopping = false;
  channel.on('message', (message: unknown) => {
    if (!isStopRequest(message) || stopping) return;
    stopping = true;
    requested = message.signal;
    shutdown(message.signal);
  });
  return (signal) => {
    if (requested === signal) {
      requested = undefined;
      return;
    }
    stopping = true;
    shutdown(signal);
  };
}

/** In a worker: the primary is gone (killed), so nothing will ever stop this process cleanly. */
export function exitWithPrimary(logger: Logger, exit: (code: number) => void): void {
  if (!cluster.isWorker) return;
  process.on('disconnect', () => {
    logger.warn('primary process gone; exiting');
    exit(1);
  });
}
