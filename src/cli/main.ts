#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { CommandGroup } from './groups.js';
import { COMMAND_GROUPS, groupFor } from './groups.js';
import { escapeControl, escapeErrorMessage } from '../terminal/index.js';

/**
 * The `tessera` command. Only the group of the command being run is loaded: `--help`,
 * `--version`, `agent` and `exchange` must start fast in a sidecar, without the broker's
 * HTTP server, Kubernetes client, PKCS#11 binding or Redis client.
 */
const { version } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('tessera')
  .description(
    'Workload identity federation broker: Kubernetes service-account tokens in, short-lived credentials out',
  )
  .version(version, '-V, --version', 'print the version')
  .option(
    '-c, --config <file>',
    'config file (YAML or JSON); default: $TESSERA_CONFIG, else the embedded dev defaults',
  )
  .showHelpAfterError();

const args = process.argv.slice(2);
const group: CommandGroup | undefined = groupFor(args);
if (group) await group.register(program);
else
  for (const entry of COMMAND_GROUPS)
    for (const [name, description] of entry.commands)
      program.command(name).description(description);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Messages may quote a config file, a token or a server's answer: printed escaped.
  process.stderr.write(`tessera: ${describeError(error)}\n`);
  process.exitCode = 1;
}

function describeError(error: unknown): string {
  if (!(error instanceof Error) || 'problems' in error) return escapeErrorMessage(error);
  // Broker-side errors carry a client-safe description; anything else its message.
  if (
    'code' in error &&
    typeof error.code === 'string' &&
    'description' in error &&
    error.name !== 'ExchangeError'
  ) {
    return escapeControl(`${error.code}: ${String(error.description)}`);
  }
  // SDK errors carry the broker's endpoint; a refusal's message does not name it.
  const endpoint = 'endpoint' in error && typeof error.endpoint === 'string' ? error.endpoint : '';
  return escapeControl(
    endpoint && !error.message.includes(endpoint)
      ? `${error.message} (${endpoint})`
      : error.message,
  );
}
