import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirectories } from '../../src/files.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-files-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('makeDirectories', () => {
  it('ok/creates-missing-parents-with-the-mode-and-returns-the-first-it-made', () => {
    const dir = join(root, 'a', 'b', 'c');
    expect(makeDirectories(dir, 0o700)).toBe(join(root, 'a'));
    for (const made of [join(root, 'a'), join(root, 'a', 'b'), dir])
      expect(statSync(made).mode & 0o077).toBe(0);
  });

  it('ok/an-existing-directory-is-left-as-it-is', () => {
    expect(makeDirectories(root, 0o700)).toBeUndefined();
  });

  it('fail/a-file-in-the-way-is-refused', () => {
    writeFileSync(join(root, 'plain-file'), '');
    expect(() => makeDirectories(join(root, 'plain-file', 'sub'))).toThrow(/ENOTDIR/);
  });

  it('fail/a-directory-under-proc-is-refused-at-once', () => {
    // procfs answers mkdir with ENOENT, on which Node's recursive mkdir retries forever.
    expect(() => makeDirectories(`/proc/tessera-${process.pid}/keys`)).toThrow(/ENOENT/);
  });
});
