import { InvalidArgumentError, type Command } from 'commander';
import { ConfigError, loadConfig } from '../config/index.js';
import { loadDevCluster } from '../dev-cluster/index.js';
import { globalConfigFile } from './groups.js';

const positiveInt = (value: string): number => {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('must be a positive whole number');
  return Number(value);
};

/** `tessera dev-token`: a token the embedded dev cluster vouches for. */
export function registerDevTokenCommand(program: Command): void {
  program
    .command('dev-token')
    .description("print a projected-service-account-shaped JWT signed by the dev cluster's key")
    .requiredOption('--namespace <ns>', 'the pod namespace')
    .requiredOption('--service-account <sa>', 'the service account name')
    .option('--audience <aud>', 'audience of the token (default: the broker audience)')
    .option('--ttl <seconds>', 'lifetime in seconds', positiveInt, 600)
    .action(
      async (options: {
        namespace: string;
        serviceAccount: string;
        audience?: string;
        ttl: number;
      }) => {
        const config = loadConfig({ file: globalConfigFile(program) });
        if (!config.devCluster)
          throw new ConfigError(
            'this config has no devCluster: dev-token signs only for the dev cluster',
          );
        const dev = await loadDevCluster(config.devCluster, config.audience);
        process.stdout.write(
          `${await dev.signToken({ namespace: options.namespace, serviceAccount: options.serviceAccount, audience: options.audience ?? config.audience, ttlSeconds: options.ttl })}\n`,
        );
      },
    );
}
