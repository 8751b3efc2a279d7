import type { Command } from 'commander';
import { createApp } from '../app.js';
import { loadConfig } from '../config/index.js';
import { globalConfigFile } from './groups.js';

const MIN_BROKER_NODE = 24;

/** `tessera serve`: the broker. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the broker')
    .option('-c, --config <file>', 'config file (YAML or JSON)')
    .action(async (options: { config?: string }) => {
      // The broker's libraries (the Kubernetes client, undici) need a supported LTS; the SDK, agent and exchange do not.
      if (Number(process.versions.node.split('.')[0]) < MIN_BROKER_NODE) {
        throw new Error(`tessera serve needs Node.js ${MIN_BROKER_NODE} or later (this is ${process.version}); the SDK, agent and exchange run on 20.19+`);
      }
      const config = loadConfig({ file: options.config ?? globalConfigFile(program) });
      const app = await createApp(config);
      const { url } = await app.listen();
      const hint = app.devCluster
        ? ` — try: TOKEN=$(npx tessera dev-token --namespace default --service-account demo) && curl -s ${url}/v1/token -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d subject_token_type=urn:ietf:params:oauth:token-type:jwt -d resource=demo -d subject_token=$TOKEN`
        : '';
      console.log(`Tessera listening on ${url} (issuer ${config.issuer})${hint}`);
      const stop = async () => {
        await app.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
