import type { Command } from 'commander';

/** A set of commands that share their implementation, loaded only when one of them runs. */
export interface CommandGroup {
  /** Top-level command names with the one-line description `tessera --help` lists. */
  commands: ReadonlyArray<readonly [name: string, description: string]>;
  register(program: Command): Promise<void>;
}

/** The file given with the global `--config` (or `$TESSERA_CONFIG`, which loadConfig reads itself). */
export const globalConfigFile = (program: Command): string | undefined =>
  program.opts<{ config?: string }>().config;

export const COMMAND_GROUPS: readonly CommandGroup[] = [
  {
    commands: [['serve', 'run the broker']],
    register: async (program) => (await import('./serve.js')).registerServeCommand(program),
  },
  {
    commands: [
      ['dev-token', "print a projected-service-account-shaped JWT signed by the dev cluster's key"],
    ],
    register: async (program) => (await import('./dev-token.js')).registerDevTokenCommand(program),
  },
  {
    commands: [
      ['exchange', 'exchange a service-account token and print the issued credential'],
      ['agent', 'sidecar: keep DIR/token (and for x509 the SVID files) fresh'],
    ],
    register: async (program) => (await import('./client.js')).registerClientCommands(program),
  },
  {
    commands: [['policy', 'lint, explain and review trust policies']],
    register: async (program) => (await import('./policy.js')).registerPolicyCommands(program),
  },
  {
    commands: [['keys', 'list, rotate and generate the JWT signing keys']],
    register: async (program) => {
      const [{ registerKeyCommands }, { loadConfig }] = await Promise.all([
        import('./keys.js'),
        import('../config/index.js'),
      ]);
      registerKeyCommands(program, () => loadConfig({ file: globalConfigFile(program) }));
    },
  },
  {
    commands: [['ca', 'the X.509 CA that signs SPIFFE X.509-SVIDs']],
    register: async (program) => {
      const [{ registerCaCommands }, { loadConfig }] = await Promise.all([
        import('./ca.js'),
        import('../config/index.js'),
      ]);
      registerCaCommands(program, () => loadConfig({ file: globalConfigFile(program) }));
    },
  },
  {
    commands: [['config', 'check a config file without starting the broker']],
    register: async (program) => (await import('./config.js')).registerConfigCommands(program),
  },
  {
    commands: [['status', "print a running broker's readiness"]],
    register: async (program) => (await import('./status.js')).registerStatusCommand(program),
  },
];

/** Options of the top-level program that take a value (so that value is not read as a command name). */
const VALUE_OPTIONS = new Set(['-c', '--config']);

/** The group of the command named in `args` (also for `help COMMAND`); undefined for none or an unknown one. */
export function groupFor(args: readonly string[]): CommandGroup | undefined {
  const words: string[] = [];
  for (let index = 0; index < args.length && words.length < 2; index++) {
    const arg = args[index] as string;
    if (arg === '--') break;
    if (VALUE_OPTIONS.has(arg)) index++;
    else if (!arg.startsWith('-')) words.push(arg);
    else if (words.length > 0) break;
  }
  const name = words[0] === 'help' ? words[1] : words[0];
  return COMMAND_GROUPS.find((group) => group.commands.some(([command]) => command === name));
}
