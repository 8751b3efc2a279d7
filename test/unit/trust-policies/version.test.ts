import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gitBlobId, loadPolicySet, policyVersion } from '../../../src/trust-policies/index.js';
import { requireBinary } from '../../support/redis.js';

const hasGit = requireBinary('git');

/** The recipe docs/audit.md gives auditors, verbatim. */
const RECIPE =
  `git ls-tree HEAD:policies | awk '$2 == "blob" && tolower($4) ~ /\\.(ya?ml|json)$/ && $4 !~ /^\\./ && $4 != "schema.json" { print $4" "$3 }' ` +
  `| LC_ALL=C sort | sha256sum | cut -d' ' -f1`;

describe('policyVersion', () => {
  it('ok/blob-id-is-what-git-hash-object-prints', () => {
    expect(gitBlobId('')).toBe('e69de29bb2d1d6434b8b29ae775ad8c2e48c5391');
    expect(gitBlobId('é\n')).toBe(createBlob('é\n'));
  });

  it('ok/independent-of-directory-and-listing-order', () => {
    const a = { file: '/x/a.yaml', text: 'a: 1\n' };
    const b = { file: '/y/b.yaml', text: 'b: 2\n' };
    expect(policyVersion([a, b])).toBe(policyVersion([b, { ...a, file: 'a.yaml' }]));
    expect(policyVersion([a, b])).not.toBe(policyVersion([a, { ...b, text: 'b: 3\n' }]));
    expect(policyVersion([a, b])).toMatch(/^[0-9a-f]{64}$/);
  });

  describe.skipIf(!hasGit)('an auditor recomputes it from a commit with git', () => {
    const repo = mkdtempSync(join(tmpdir(), 'tessera-policy-version-'));
    afterAll(() => rmSync(repo, { recursive: true, force: true }));

    it('ok/documented-recipe-matches-the-loaded-set', () => {
      cpSync('policies', join(repo, 'policies'), { recursive: true });
      // Files the loader skips are not part of the version: the editor schema and dot files.
      writeFileSync(join(repo, 'policies', '.notes.yaml'), 'ignored: true\n');
      const git = (...args: string[]) =>
        execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
          cwd: repo,
          encoding: 'utf8',
        });
      git('init', '-q');
      git('add', '.');
      git('commit', '-qm', 'policies');
      const fromGit = execFileSync('sh', ['-c', RECIPE], { cwd: repo, encoding: 'utf8' }).trim();
      expect(fromGit).toMatch(/^[0-9a-f]{64}$/);
      expect(loadPolicySet(join(repo, 'policies')).version).toBe(fromGit);
    });
  });
});

function createBlob(text: string): string {
  return execFileSync('git', ['hash-object', '--stdin'], { input: text, encoding: 'utf8' }).trim();
}
