import { InvalidArgumentError, type Command } from 'commander';
import type { TesseraApp } from '../app.js';
import { loadConfig } from '../config/index.js';
import { serve } from '../serve.js';
import { globalConfigFile } from './groups.js';
import { escapeControl } from '../terminal/index.js';

const MIN_BROKER_NODE = 24;

const workersOption = (value: string): number | 'auto' => {
  if (value === 'auto') return 'auto';
  if (!/^[1-9][0-9]*$/.test(value))
    throw new InvalidArgumentError('must be a positive whole number or auto');
  return Number(value);
};

/** `tessera serve`: the broker, in one process or `--workers` processes sharing the listeners. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the broker')
    .option('-c, --config <file>', 'config file (YAML or JSON)')
    .option(
      '--workers <n|auto>',
      "processes sharing the listeners (default: the config's workers, 1)",
      workersOption,
    )
    .action(async (options: { config?: string; workers?: number | 'auto' }) => {
      // The broker's libraries (the Kubernetes client, undici) need a supported LTS; the SDK, agent and exchange do not.
      if (Number(process.versions.node.split('.')[0]) < MIN_BROKER_NODE) {
        throw new Error(
          `tessera serve needs Node.js ${MIN_BROKER_NODE} or later (this is ${process.version}); the SDK, agent and exchange run on 20.19+`,
        );
      }
      const config = loadConfig({ file: options.config ?? globalConfigFile(program) });
      await serve(config, {
        ...(options.workers !== undefined && { workers: options.workers }),
        onListening: announce,
      });
    });
}

function announce(app: TesseraApp, url: string): void {
  const hint = app.devCluster
    ? ` — try: TOKEN=$(npx tessera dev-token --namespace default --service-account demo) && curl -s ${url}/v1/token -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d subject_token_type=urn:ietf:params:oauth:token-type:jwt -d resource=demo -d subject_token=$TOKEN`
    : '';
  console.log(escapeControl(`Tessera listening on ${url} (issuer ${app.config.issuer})${hint}`));
}
