import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseConfig, type Config } from '../../src/config/index.js';
import { registerKeyCommands } from '../../src/cli/keys.js';

/** `tessera keys …` through commander, against a local key directory. */
const root = mkdtempSync(join(tmpdir(), 'tessera-keys-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const config: Config = parseConfig({
  issuer: 'https://sts.test',
  audience: 'sts.test',
  keys: { provider: 'local', dir: join(root, 'keys'), algorithms: ['ES256', 'RS256'] },
});

async function run(...args: string[]): Promise<string> {
  const program = new Command('tessera').exitOverride();
  registerKeyCommands(program, () => config);
  let out = '';
  const write = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
  try {
    await program.parseAsync(['node', 'tessera', ...args]);
  } finally {
    write.mockRestore();
  }
  return out;
}

interface Listed {
  kid: string;
  alg: string;
  state: string;
  createdAt: string;
  activateAt?: string;
  activatedAt?: string;
}

describe('keys: tessera keys', () => {
  it('ok/list-before-generate', async () => {
    expect(await run('keys', 'list')).toBe('no signing keys (run `tessera keys generate`)\n');
  });

  it('ok/generate-then-list', async () => {
    const table = await run('keys', 'generate');
    expect(table.split('\n')[0]).toMatch(
      /^KID\s+ALG\s+STATE\s+CREATED\s+ACTIVATES\/ACTIVATED\s+RETIRED\s+REMOVED AFTER$/,
    );
    const listed = JSON.parse(await run('keys', 'list', '--json')) as Listed[];
    expect(listed.map((key) => [key.alg, key.state])).toEqual([
      ['ES256', 'active'],
      ['RS256', 'active'],
    ]);
    expect(
      listed.every(
        (key) => /^[A-Za-z0-9_-]{43}$/.test(key.kid) && key.activatedAt === key.createdAt,
      ),
    ).toBe(true);
    expect(await run('keys', 'generate')).toBe(table);
  });

  it('ok/rotate-one-algorithm-publishes-a-next-key', async () => {
    const before = JSON.parse(await run('keys', 'list', '--json')) as Listed[];
    await run('keys', 'rotate', '--alg', 'ES256');
    const after = JSON.parse(await run('keys', 'list', '--json')) as Listed[];
    expect(after.map((key) => [key.alg, key.state])).toEqual([
      ['ES256', 'active'],
      ['RS256', 'active'],
      ['ES256', 'next'],
    ]);
    expect(after.slice(0, 2)).toEqual(before);
    const added = after[2] as Listed;
    // Published one JWKS cache period (300 s) plus one sync interval (30 s) before it signs.
    expect(Date.parse(added.activateAt as string) - Date.parse(added.createdAt)).toBe(330_000);
  });

  it('ok/rotate-immediate', async () => {
    await run('keys', 'rotate', '--alg', 'RS256', '--immediate');
    const after = JSON.parse(await run('keys', 'list', '--json')) as Listed[];
    expect(after.filter((key) => key.alg === 'RS256').map((key) => key.state)).toEqual([
      'retired',
      'active',
    ]);
  });

  it('fail/unknown-algorithm', async () => {
    const error = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await expect(run('keys', 'rotate', '--alg', 'HS256')).rejects.toMatchObject({
        code: 'commander.invalidArgument',
      });
    } finally {
      error.mockRestore();
    }
  });
});
