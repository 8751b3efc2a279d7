import { Option, type Command } from 'commander';
import { createSharedCache } from '../cache/index.js';
import type { Config } from '../config/index.js';
import { SIGNING_ALGORITHMS } from '../constants.js';
import { createLogger } from '../observability/index.js';
import {
  createKeyProvider,
  type JwsAlgorithm,
  type KeyInfo,
  type KeyProvider,
} from '../keys/index.js';
import { escapeJson, escapeLines } from '../terminal/index.js';

/**
 * `tessera keys list | rotate | generate`, against the same config (and the same key store,
 * rotation lock and timings) as the server.
 *
 * @example registerKeyCommands(program, () => loadConfig({ file }));
 */
export function registerKeyCommands(program: Command, loadConfig: () => Config): void {
  const keys = program
    .command('keys')
    .description('list, rotate and generate the JWT signing keys');

  keys
    .command('list')
    .description('print every signing key: kid, alg, state and its rotation times')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const infos = await withProvider(loadConfig(), { applyAtStart: false }, (provider) =>
        provider.list(),
      );
      process.stdout.write(
        options.json
          ? `${escapeJson(JSON.stringify(infos.map(listEntry), null, 2))}\n`
          : formatTable(infos),
      );
    });

  keys
    .command('rotate')
    .description(
      'start a rotation now: a new key is published, and signs once relying parties can have fetched it',
    )
    .addOption(
      new Option('--alg <alg...>', 'only these algorithms').choices([...SIGNING_ALGORITHMS]),
    )
    .option(
      '--immediate',
      'sign with the new key at once (key compromise: cached JWKS will reject new tokens for a while)',
    )
    .action(async (options: { alg?: JwsAlgorithm[]; immediate?: boolean }) => {
      const infos = await withProvider(loadConfig(), { applyAtStart: false }, (provider) =>
        provider.rotate({ algorithms: options.alg, immediate: options.immediate ?? false }),
      );
      process.stdout.write(formatTable(infos));
    });

  keys
    .command('generate')
    .description('create the keys of configured algorithms that have none')
    .action(async () => {
      const infos = await withProvider(loadConfig(), { applyAtStart: false }, (provider) =>
        provider.generate(),
      );
      process.stdout.write(formatTable(infos));
    });
}

async function withProvider<T>(
  config: Config,
  options: { applyAtStart: boolean },
  task: (provider: KeyProvider) => Promise<T>,
): Promise<T> {
  const logger = createLogger({ level: 'warn' });
  const cache = createSharedCache(config.cache, { logger, env: process.env });
  try {
    const provider = await createKeyProvider(config.keys, {
      logger,
      cache,
      autoRotate: false,
      applyAtStart: options.applyAtStart,
    });
    try {
      return await task(provider);
    } finally {
      await provider.close();
    }
  } finally {
    await cache.close();
  }
}

const iso = (seconds: number | undefined): string =>
  seconds === undefined ? '-' : new Date(seconds * 1000).toISOString();

function listEntry(info: KeyInfo): Record<string, unknown> {
  return {
    kid: info.kid,
    alg: info.alg,
    state: info.state,
    createdAt: iso(info.createdAt),
    activateAt: info.activateAt === undefined ? undefined : iso(info.activateAt),
    activatedAt: info.activatedAt === undefined ? undefined : iso(info.activatedAt),
    retiredAt: info.retiredAt === undefined ? undefined : iso(info.retiredAt),
    removeAfter: info.removeAfter === undefined ? undefined : iso(info.removeAfter),
  };
}

/** A plain aligned table, one key a line, oldest first. */
export function formatTable(infos: KeyInfo[]): string {
  const header = [
    'KID',
    'ALG',
    'STATE',
    'CREATED',
    'ACTIVATES/ACTIVATED',
    'RETIRED',
    'REMOVED AFTER',
  ];
  const rows = [...infos]
    .sort((a, b) => a.createdAt - b.createdAt)
    .map((info) => [
      info.kid,
      info.alg,
      info.state,
      iso(info.createdAt),
      iso(info.activatedAt ?? info.activateAt),
      iso(info.retiredAt),
      iso(info.removeAfter),
    ]);
  if (rows.length === 0) return 'no signing keys (run `tessera keys generate`)\n';
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] as string).length)),
  );
  // A kid is read from the key store's files: printed escaped.
  return escapeLines(
    [header, ...rows].map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] as number))
        .join('  ')
        .trimEnd(),
    ),
  );
}
