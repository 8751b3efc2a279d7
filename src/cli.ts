import { writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { loadDevCluster } from './dev-cluster/index.js';
import { registerCaCommands } from './issuers/x509/index.js';
import { registerKeyCommands } from './keys/index.js';
import { createClient, ExchangeError, runAgent } from './sdk/index.js';
import { registerPolicyCommands } from './trust-policies/index.js';

const program = new Command('tessera')
  .description('Workload identity federation broker: Kubernetes service-account tokens in, short-lived credentials out')
  .option('-c, --config <file>', 'config file (YAML or JSON); default: $TESSERA_CONFIG, else the embedded dev defaults')
  .showHelpAfterError();

const configFromOptions = (): Config => loadConfig({ file: program.opts<{ config?: string }>().config });

const positiveInt = (value: string): number => {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('must be a positive whole number');
  return Number(value);
};

program
  .command('serve')
  .description('run the broker')
  .option('-c, --config <file>', 'config file (YAML or JSON)')
  .action(async (options: { config?: string }) => {
    const config = loadConfig({ file: options.config ?? program.opts<{ config?: string }>().config });
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

program
  .command('dev-token')
  .description("print a projected-service-account-shaped JWT signed by the dev cluster's key")
  .requiredOption('--namespace <ns>', 'the pod namespace')
  .requiredOption('--service-account <sa>', 'the service account name')
  .option('--audience <aud>', 'audience of the token (default: the broker audience)')
  .option('--ttl <seconds>', 'lifetime in seconds', positiveInt, 600)
  .action(async (options: { namespace: string; serviceAccount: string; audience?: string; ttl: number }) => {
    const config = configFromOptions();
    if (!config.devCluster) throw new ConfigError('this config has no devCluster: dev-token signs only for the dev cluster');
    const dev = await loadDevCluster(config.devCluster, config.audience);
    process.stdout.write(
      `${await dev.signToken({ namespace: options.namespace, serviceAccount: options.serviceAccount, audience: options.audience ?? config.audience, ttlSeconds: options.ttl })}\n`,
    );
  });

interface ClientCliOptions {
  endpoint: string;
  tokenFile: string;
  audience?: string;
  resource?: string;
  scope?: string;
  type: 'jwt' | 'x509';
}
const withClientOptions = (command: Command): Command =>
  command
    .requiredOption('--endpoint <url>', 'the broker, e.g. http://127.0.0.1:8080')
    .requiredOption('--token-file <file>', 'the projected service-account token')
    .option('--audience <aud>', 'audience of the issued token')
    .option('--resource <role>', 'the role (NAME or urn:tessera:role:NAME)')
    .option('--scope <scope>', 'space-separated scopes')
    .addOption(new Option('--type <type>', 'credential type').choices(['jwt', 'x509']).default('jwt'));

withClientOptions(program.command('exchange').description('exchange a service-account token and print the issued credential'))
  .option('--key-out <file>', 'x509: write the private key generated for the CSR here (mode 0600); it is never printed')
  .action(async (options: ClientCliOptions & { keyOut?: string }) => {
    const client = createClient(options);
    if (options.type === 'x509') {
      const svid = await client.getCertificate();
      if (options.keyOut) await writeFile(options.keyOut, svid.privateKeyPem, { mode: 0o600, flag: 'wx' });
      else console.error('tessera exchange: the private key was not kept (use --key-out FILE, or the agent for files)');
      process.stdout.write(svid.certificatePem);
    } else process.stdout.write(`${await client.getToken()}\n`);
  });

withClientOptions(program.command('agent').description('sidecar: keep DIR/token (and for x509 the SVID files) fresh'))
  .requiredOption('--out <dir>', 'directory for token, svid.pem, svid-key.pem, bundle.pem')
  .option('--once', 'write once and exit (init container)')
  .action(async (options: ClientCliOptions & { out: string; once?: boolean }) => {
    const controller = new AbortController();
    process.once('SIGTERM', () => controller.abort());
    process.once('SIGINT', () => controller.abort());
    await runAgent({
      ...options,
      signal: controller.signal,
      onError: (error) => console.error(`tessera agent: ${error instanceof Error ? error.message : String(error)}`),
    });
  });

registerPolicyCommands(program);
registerKeyCommands(program, configFromOptions);
registerCaCommands(program, configFromOptions);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof ConfigError || error instanceof ExchangeError) console.error(`tessera: ${error.message}`);
  else if (error instanceof Error && 'code' in error && typeof error.code === 'string' && 'description' in error) {
    console.error(`tessera: ${error.code}: ${String(error.description)}`);
  } else console.error(`tessera: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
