import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The SDK ships to pods and the command's entry is what every sidecar start pays for: both must
 * stay apart from the broker. (test/integration/package.test.ts checks what the built package
 * really loads; this names the offending import at once.)
 */
const SRC = resolve(import.meta.dirname, '../../src');
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s(?:type\s)?[^'"]*?from\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'/g;

/** Leaf modules that import nothing themselves (checked below), so any entry point may use them. */
const LEAVES = {
  constants: '../constants.js',
  files: '../files.js',
  terminal: '../terminal/index.js',
} as const;

function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((match) => (match[1] ?? match[2]) as string);
}

describe('module boundaries', () => {
  it('the shared leaf modules (src/constants.ts, src/files.ts, src/terminal/) import nothing but each other and node:', () => {
    const files = [
      join(SRC, 'constants.ts'),
      join(SRC, 'files.ts'),
      ...readdirSync(join(SRC, 'terminal')).map((name) => join(SRC, 'terminal', name)),
    ];
    const offending = files.flatMap((file) =>
      staticImports(file).filter((spec) => !(spec.startsWith('node:') || spec.startsWith('./'))),
    );
    expect(offending).toEqual([]);
  });

  it('src/sdk imports only node:, zod, @peculiar/x509, reflect-metadata, src/constants.ts, src/files.ts and its own files', () => {
    const offending = readdirSync(join(SRC, 'sdk'))
      .filter((name) => name.endsWith('.ts'))
      .flatMap((name) =>
        staticImports(join(SRC, 'sdk', name))
          .filter(
            (spec) =>
              !(
                spec.startsWith('node:') ||
                spec.startsWith('./') ||
                [
                  'zod',
                  '@peculiar/x509',
                  'reflect-metadata',
                  LEAVES.constants,
                  LEAVES.files,
                ].includes(spec)
              ),
          )
          .map((spec) => `${name}: ${spec}`),
      );
    expect(offending).toEqual([]);
  });

  it('the command entry (src/cli/main.ts, groups.ts) statically imports only commander, node: and src/terminal/', () => {
    const offending = ['main.ts', 'groups.ts'].flatMap((name) =>
      staticImports(join(SRC, 'cli', name))
        .filter(
          (spec) =>
            !(
              spec.startsWith('node:') ||
              spec === 'commander' ||
              spec === './groups.js' ||
              spec === LEAVES.terminal
            ),
        )
        .map((spec) => `${name}: ${spec}`),
    );
    expect(offending).toEqual([]);
  });

  it('the agent and exchange commands (src/cli/client.ts) import only the SDK and src/terminal/', () => {
    const offending = staticImports(join(SRC, 'cli', 'client.ts')).filter(
      (spec) =>
        !(
          spec.startsWith('node:') ||
          spec === 'commander' ||
          spec === '../sdk/index.js' ||
          spec === LEAVES.terminal
        ),
    );
    expect(offending).toEqual([]);
  });
});
