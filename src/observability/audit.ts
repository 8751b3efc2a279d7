import { once } from 'node:events';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { makeDirectories } from '../files.js';
import { isoClock, type Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/**
 * One token exchange as an auditor reads it (docs/audit.md, docs/audit.schema.json): who asked
 * for what, what was decided under which policy version, and what was issued. Identities and
 * digests only: never a token, a PIN, a CSR's key or a private key.
 */
export interface AuditEvent {
  event: 'token_exchange';
  requestId: string;
  outcome: 'allow' | 'deny' | 'error';
  /** The OAuth error code of a refusal. */
  error?: string;
  /** The machine-readable cause of a refusal (`ERROR_REASONS`). */
  reason?: string;
  status: number;
  role?: string;
  cluster?: string;
  iss?: string;
  sub?: string;
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
  decidedBy?: string;
  failedCondition?: string;
  requestedTokenType?: string;
  audience?: string[];
  jti?: string;
  /** Unix seconds. */
  exp?: number;
  credentialSha256?: string;
  clientAddress?: string;
  clientCertSubject?: string;
  clientCertUris?: string[];
  userAgent?: string;
  durationMs: number;
  policyVersion?: string;
}

export interface AuditLog {
  write(event: AuditEvent): void;
  /**
   * Opens the audit file again by its path, so that events go to the new file once log rotation
   * has moved the old one away (SIGHUP). Without a file of its own (the log stream, standard
   * output) there is nothing to reopen.
   */
  reopen(): void;
  /** Flushes what is buffered (the process is about to exit). */
  close(): Promise<void>;
}

/**
 * The audit stream: the log stream by default (pino adds `time`, `level`, `msg`), or with
 * `file` its own file (`stdout` for standard output) holding nothing but events, one JSON object
 * a line. Each event is serialised once.
 *
 * @example const audit = createAuditLog({ file: '/var/log/tessera/audit.log', logger });
 */
export function createAuditLog(options: {
  file?: string;
  logger: Logger;
  now?: () => number;
  metrics?: Pick<Metrics, 'auditWriteFailures'>;
}): AuditLog {
  const { file, logger, metrics } = options;
  const now = options.now ?? Date.now;
  const lost = (): void => metrics?.auditWriteFailures.inc();
  if (file === undefined) {
    return {
      write: logStreamWriter(logger, lost),
      reopen: () => undefined,
      close: () => Promise.resolve(),
    };
  }
  // Written synchronously for the reasons the log stream is (observability/logger.ts): the event
  // reaches the OS before the answer leaves, and nothing piles up in memory behind a slow write.
  if (file !== 'stdout') makeDirectories(dirname(file));
  const destination = pino.destination({ dest: file === 'stdout' ? 1 : file, sync: true });
  // A failed reopen throws its error and the stream emits it again: reopen() has logged it.
  const reported = new WeakSet<object>();
  const written = watchWrites(destination, (error) => {
    if (reported.has(error)) return;
    logger.error({ err: { code: error.code, message: error.message }, file }, 'audit stream error');
  });
  const sink = file === 'stdout' ? 'standard output' : 'the audit file';
  let closed = false;
  let failing = false;
  const iso = isoClock();
  return {
    write(event) {
      if (closed) return;
      const line = `{"time":"${iso(now())}",${JSON.stringify(event).slice(1)}\n`;
      const error = written(line);
      if (error) lost();
      // One line when events start being lost and one when they are written again, not one per
      // event: the counter has the number.
      if (error && !failing)
        logger.error(
          { err: { code: error.code, message: error.message }, file },
          `audit events are being lost: ${sink} refuses writes`,
        );
      else if (!error && failing) logger.info({ file }, `${sink} takes audit events again`);
      failing = error !== undefined;
    },
    reopen() {
      if (closed || file === 'stdout') return;
      // Synchronous like every write: a path that cannot be opened throws here, and the events go
      // on to the file already open.
      const readyListeners = destination.listeners('ready');
      try {
        destination.reopen();
      } catch (error) {
        // The stream left a listener to close the open file once a new one is ready: a later
        // reopen that succeeds would run it as well as its own, closing that descriptor twice.
        for (const listener of destination.listeners('ready'))
          if (!readyListeners.includes(listener))
            destination.removeListener('ready', listener as () => void);
        if (error instanceof Error) reported.add(error);
        const { code, message } = error as NodeJS.ErrnoException;
        logger.error(
          { file, pid: process.pid, err: { code, message } },
          'audit file could not be reopened: events go on to the file already open',
        );
        return;
      }
      // The pid tells the workers of `serve --workers` apart: each holds the file open.
      logger.info({ file, pid: process.pid }, 'audit file reopened');
    },
    async close() {
      if (closed) return;
      closed = true;
      if (file === 'stdout') {
        destination.flush();
        return;
      }
      const done = once(destination, 'close');
      destination.end();
      await done;
    },
  };
}

const AUDIT_MESSAGE = 'token exchange';

/** The parts of a pino logger's line it renders once (`pino.symbols`: pino's API for integrations). */
interface PinoLineParts {
  stream: { write(line: string): unknown } & Partial<WatchedStream>;
  /** `{"level":30` */
  info: string;
  /** `,"time":"…"` */
  time: () => string;
  /** `,"service":"tessera"` and the bindings of child loggers. */
  bindings: string;
  messageKey: string;
  end: string;
}

function pinoLineParts(logger: Logger): PinoLineParts | undefined {
  const internals = logger as unknown as Record<symbol, unknown>;
  const { streamSym, lsCacheSym, timeSym, chindingsSym, messageKeySym, endSym } = pino.symbols;
  const stream = internals[streamSym] as PinoLineParts['stream'] | undefined;
  const levels = internals[lsCacheSym] as Record<number, string> | undefined;
  const time = internals[timeSym];
  const bindings = internals[chindingsSym];
  const messageKey = internals[messageKeySym];
  const end = internals[endSym];
  const info = levels?.[logger.levels.values.info ?? 30];
  if (typeof stream?.write !== 'function' || typeof info !== 'string' || typeof time !== 'function')
    return undefined;
  if (typeof bindings !== 'string' || typeof messageKey !== 'string' || typeof end !== 'string')
    return undefined;
  return { stream, info, time: time as () => string, bindings, messageKey, end };
}

/**
 * The audit event as an info line of the log stream, byte for byte what `logger.info(event,
 * 'token exchange')` writes, but serialised by one `JSON.stringify`: pino would walk and escape
 * each member and run the redaction formatter, none of which an event needs (it holds identities
 * and digests, never a secret-named member).
 */
function logStreamWriter(logger: Logger, lost: () => void): (event: AuditEvent) => void {
  const parts = pinoLineParts(logger);
  if (!parts) return (event) => logger.info(event, AUDIT_MESSAGE);
  const { stream, info, time, bindings, end } = parts;
  const message = `,${JSON.stringify(parts.messageKey)}:${JSON.stringify(AUDIT_MESSAGE)}${end}`;
  // A broken log stream cannot report itself in the log: the metric is all that tells of it.
  const written = stream.on ? watchWrites(stream as WatchedStream) : undefined;
  return (event) => {
    // The trail is not a log level's to thin out: `warn` keeps every event; only `silent`, which
    // turns all output off, drops them.
    if (logger.level === 'silent') return;
    const line = `${info}${time()}${bindings},${JSON.stringify(event).slice(1, -1)}${message}`;
    if (!written) stream.write(line);
    else if (written(line)) lost();
  };
}

type WatchedStream = Pick<NodeJS.EventEmitter, 'on'> & { write(line: string): unknown };

/**
 * Writes a line to a pino stream and says what became of it: the error that failed it, or undefined. pino's synchronous
 * streams report a failed write as an 'error' event during the write (the first one twice: pino
 * re-emits it once it has looked for EPIPE), and once EPIPE has said that no one reads standard
 * output any more, pino turns every write into a no-op that reports nothing. Listening also keeps
 * a failing stream from throwing its error into whatever code writes next. An error outside a
 * write (closing a file after a reopen) goes to `onOtherError`, once.
 */
function watchWrites(
  stream: WatchedStream,
  onOtherError?: (error: NodeJS.ErrnoException) => void,
): (line: string) => NodeJS.ErrnoException | undefined {
  let writing = false;
  let failure: NodeJS.ErrnoException | undefined;
  let readerGone: NodeJS.ErrnoException | undefined;
  let last: unknown;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') readerGone = error;
    if (writing) failure ??= error;
    else if (error !== last) onOtherError?.(error);
    last = error;
  });
  return (line) => {
    failure = undefined;
    writing = true;
    try {
      stream.write(line);
    } finally {
      writing = false;
    }
    return failure ?? readerGone;
  };
}
