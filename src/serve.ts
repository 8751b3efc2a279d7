import cluster from 'node:cluster';
import { createApp, type TesseraApp } from './app.js';
import type { Config } from './config/index.js';
import { createLogger } from './observability/index.js';
import {
  createShutdown,
  exitWithPrimary,
  onReopenRequest,
  runPrimary,
  workerCount,
  workerStop,
} from './server/index.js';

export interface ServeOptions {
  /** Overrides `config.workers`. */
  workers?: number | 'auto';
  /** Told once the listeners are up (in every worker). */
  onListening?: (app: TesseraApp, url: string) => void;
}

/**
 * `tessera serve`: one process, or a primary and N workers sharing the listeners. Either way the
 * process drains on SIGTERM and exits 0, and reopens its audit file on SIGHUP.
 */
export async function serve(config: Config, options: ServeOptions = {}): Promise<void> {
  const exit = (code: number): void => process.exit(code);
  const count = workerCount(options.workers ?? config.workers);
  if (count > 1 && cluster.isPrimary) {
    const logger = createLogger({ level: config.logging.level });
    await runPrimary({
      count,
      logger,
      drainSeconds: config.lifecycle.drainSeconds,
      exit,
      prepare: async () => {
        const app = await createApp(config, {
          logger,
          watchPolicies: false,
          processMetrics: false,
        });
        await app.close();
      },
    });
    return;
  }
  const app = await createApp(config);
  const shutdown = createShutdown({
    app,
    drainSeconds: config.lifecycle.drainSeconds,
    logger: app.logger,
    exit,
  });
  // Before listening: the "listening" line is written synchronously, and a supervisor that
  // signals as soon as it reads it must find the drain in place, not the default (immediate) exit.
  const onSignal = cluster.isWorker ? workerStop(shutdown) : shutdown;
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // Log rotation's signal: without a handler SIGHUP would end the process with no drain at all.
  const reopen = (): void => app.reopenAuditFile();
  process.on('SIGHUP', reopen);
  if (cluster.isWorker) onReopenRequest(reopen);
  const { url } = await app.listen();
  exitWithPrimary(app.logger, exit);
  options.onListening?.(app, url);
}
