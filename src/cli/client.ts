import { writeFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { createClient, runAgent } from '../sdk/index.js';
import { escapeControl, escapeLines } from '../terminal/index.js';

/** Only the SDK is loaded here: these commands run in pods, where start-up time and memory count. */
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
    .addOption(
      new Option('--type <type>', 'credential type').choices(['jwt', 'x509']).default('jwt'),
    );

const groupId = (value: string): number => {
  if (!/^\d{1,10}$/.test(value) || Number(value) > 0xffffffff)
    throw new InvalidArgumentError('must be a numeric group ID');
  return Number(value);
};
const fileMode = (value: string): number => {
  if (!/^0?[0-7]{3}$/.test(value))
    throw new InvalidArgumentError('must be an octal mode such as 0640');
  return Number.parseInt(value, 8);
};
const seconds = (value: string): number => {
  if (!/^[1-9]\d{0,5}$/.test(value))
    throw new InvalidArgumentError('must be a whole number of seconds');
  return Number(value);
};

/** The message, with the endpoint when it does not name it already (a refusal's does not). */
const errorText = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error);
  const endpoint = 'endpoint' in error && typeof error.endpoint === 'string' ? error.endpoint : '';
  return escapeControl(
    endpoint && !error.message.includes(endpoint)
      ? `${error.message} (${endpoint})`
      : error.message,
  );
};

/** `tessera exchange` and `tessera agent`: the SDK as commands. */
export function registerClientCommands(program: Command): void {
  withClientOptions(
    program
      .command('exchange')
      .description('exchange a service-account token and print the issued credential'),
  )
    .option(
      '--key-out <file>',
      'x509: write the private key generated for the CSR here (mode 0600); it is never printed',
    )
    .action(async (options: ClientCliOptions & { keyOut?: string }) => {
      const client = createClient(options);
      if (options.type === 'x509') {
        const svid = await client.getCertificate();
        if (options.keyOut)
          await writeFile(options.keyOut, svid.privateKeyPem, { mode: 0o600, flag: 'wx' });
        else
          console.error(
            'tessera exchange: the private key was not kept (use --key-out FILE, or the agent for files)',
          );
        process.stdout.write(escapeLines(svid.certificatePem.trimEnd().split('\n')));
      } else process.stdout.write(`${escapeControl(await client.getToken())}\n`);
    });

  withClientOptions(
    program
      .command('agent')
      .description('sidecar: keep DIR/token (and for x509 the SVID files) fresh'),
  )
    .requiredOption('--out <dir>', 'directory for token, svid.pem, svid-key.pem, bundle.pem')
    .option('--once', 'write once and exit (init container)')
    .option(
      '--deadline <seconds>',
      'with --once: keep retrying an unreachable broker this long',
      seconds,
      60,
    )
    .option(
      '--group <gid>',
      "give the files to this group (the pod's fsGroup) and make them readable by it",
      groupId,
    )
    .option(
      '--mode <mode>',
      'file mode (default 0640 with --group); the private key is never readable by others',
      fileMode,
    )
    .action(
      async (
        options: ClientCliOptions & {
          out: string;
          once?: boolean;
          deadline: number;
          group?: number;
          mode?: number;
        },
      ) => {
        const controller = new AbortController();
        process.once('SIGTERM', () => controller.abort());
        process.once('SIGINT', () => controller.abort());
        await runAgent({
          ...options,
          deadlineMs: options.deadline * 1000,
          signal: controller.signal,
          onError: (error) => console.error(`tessera agent: ${errorText(error)}; retrying`),
          onRefreshError: (error) => console.error(`tessera agent: ${errorText(error)}`),
        });
      },
    );
}
