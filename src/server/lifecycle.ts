import type { Logger } from '../observability/index.js';

/** What the shutdown sequence drives: the app's drain steps. */
export interface Drainable {
  beginDrain(): void;
  stopListening(): Promise<void>;
  destroyConnections(): void;
  close(): Promise<void>;
}

/** After the drain, in-flight requests get this long before their connections are cut. */
const FINISH_SECONDS = 6;
/** The process is gone by drain + this, whatever hangs (an HSM, a Redis that never answers). */
export const SHUTDOWN_DEADLINE_SECONDS = 10;

export interface ShutdownOptions {
  app: Drainable;
  drainSeconds: number;
  logger: Logger;
  exit: (code: number) => void;
}

/**
 * SIGTERM: readiness 503 at once while exchanges are still served for `drainSeconds` (the time
 * endpoints and load balancers take to stop sending), then stop accepting, let in-flight
 * requests finish, close idle keep-alive connections, close Redis/HSM, exit 0. A second signal
 * exits at once. One log line per phase.
 *
 * @example const shutdown = createShutdown({ app, drainSeconds: 5, logger, exit: process.exit }); process.on('SIGTERM', shutdown);
 */
export function createShutdown(options: ShutdownOptions): (signal: string) => void {
  const { app, logger, exit } = options;
  let started = false;
  return (signal) => {
    if (started) {
      logger.warn({ signal }, 'shutdown: second signal, exiting now');
      exit(1);
      return;
    }
    started = true;
    const drainSeconds = signal === 'SIGINT' ? 0 : options.drainSeconds;
    app.beginDrain();
    logger.info(
      { signal, drainSeconds },
      'shutdown: draining; readiness reports 503, requests are still served',
    );
    const watchdog = setTimeout(
      () => {
        logger.error(
          { deadlineSeconds: drainSeconds + SHUTDOWN_DEADLINE_SECONDS },
          'shutdown: deadline passed, exiting',
        );
        exit(1);
      },
      (drainSeconds + SHUTDOWN_DEADLINE_SECONDS) * 1000,
    );
    watchdog.unref();
    setTimeout(() => {
      void (async () => {
        logger.info('shutdown: listeners closed; finishing in-flight requests');
        const cut = setTimeout(() => {
          logger.warn({ afterSeconds: FINISH_SECONDS }, 'shutdown: cutting connections still open');
          app.destroyConnections();
        }, FINISH_SECONDS * 1000);
        await app.stopListening();
        clearTimeout(cut);
        logger.info('shutdown: connections closed; closing cache, keys and watchers');
        await app
          .close()
          .catch((error: unknown) =>
            logger.warn(
              { err: { message: error instanceof Error ? error.message : String(error) } },
              'shutdown: close failed',
            ),
          );
        logger.info('shutdown: stopped');
        clearTimeout(watchdog);
        exit(0);
      })();
    }, drainSeconds * 1000);
  };
}
