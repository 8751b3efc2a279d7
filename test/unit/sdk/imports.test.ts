import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The SDK ships to pods and the command's entry is what every sidecar start pays for: both must
 * stay apart from the broker. (test/integration/package.test.ts checks what the built package
 * really loads; this names the offending import at once.)
 */
const SRC = resolve(import.meta.dirname, '../../../src');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s(?:type\s)?[^'"]*?from\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'/g;

function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((match) => (match[1] ?? match[2]) as string);
}

describe('module boundaries', () => {
  it('src/sdk imports only node:, zod, @peculiar/x509, reflect-metadata and its own files', () => {
    const offending = readdirSync(join(SRC, 'sdk'))
      .filter((name) => name.endsWith('.ts'))
      .flatMap((name) =>
        staticImports(join(SRC, 'sdk', name))
          .filter((spec) => !(spec.startsWith('node:') || spec.startsWith('./') || ['zod', '@peculiar/x509', 'reflect-metadata'].includes(spec)))
          .map((spec) => `${name}: ${spec}`),
      );
    expect(offending).toEqual([]);
  });

  it('the command entry (src/cli/main.ts, groups.ts) statically imports only commander and node:', () => {
    const offending = ['main.ts', 'groups.ts'].flatMap((name) =>
      staticImports(join(SRC, 'cli', name))
        .filter((spec) => !(spec.startsWith('node:') || spec === 'commander' || spec === './groups.js'))
        .map((spec) => `${name}: ${spec}`),
    );
    expect(offending).toEqual([]);
  });

  it('the agent and exchange commands (src/cli/client.ts) import only the SDK', () => {
    const offending = staticImports(join(SRC, 'cli', 'client.ts')).filter(
      (spec) => !(spec.startsWith('node:') || spec === 'commander' || spec === '../sdk/index.js'),
    );
    expect(offending).toEqual([]);
  });
});
