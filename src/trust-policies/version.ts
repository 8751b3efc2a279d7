import { createHash } from 'node:crypto';
import { basename } from 'node:path';

/**
 * The git blob id of a file's content: `sha1("blob <byte length>\0" + bytes)`, what
 * `git hash-object FILE` and `git ls-tree` print. Policy files are UTF-8 text.
 *
 * @example gitBlobId('') // 'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391'
 */
export function gitBlobId(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

/**
 * The digest of a policy set, so an audit event ties a decision to exact files: SHA-256 (hex)
 * over one `<file name> <git blob id>\n` line per file, lines sorted by byte order. An auditor
 * recomputes it from a commit with git (docs/audit.md):
 * `git ls-tree HEAD:policies | awk '$2 == "blob" && tolower($4) ~ /\.(ya?ml|json)$/ && $4 !~ /^\./ && $4 != "schema.json"
 * { print $4" "$3 }' | LC_ALL=C sort | sha256sum`.
 *
 * @example policyVersion([{ file: 'policies/a.yaml', text }])
 */
export function policyVersion(files: ReadonlyArray<{ file: string; text: string }>): string {
  const lines = files
    .map((entry) => `${basename(entry.file)} ${gitBlobId(entry.text)}\n`)
    .sort(byteOrder);
  return createHash('sha256').update(lines.join('')).digest('hex');
}

/** `LC_ALL=C sort`: UTF-8 byte order, which for these lines is code-point order, not UTF-16 order. */
function byteOrder(a: string, b: string): number {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return Buffer.compare(left, right);
}
