import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * Replaces `path` with `content` so that a reader (another replica, a restart after a crash)
 * sees the old file or the new one, never half of one: write a temporary file next to it
 * (created exclusively, with `mode` set before any byte lands), fsync, then rename over `path`.
 *
 * @example await writeFileAtomic(join(dir, 'state.json'), text, 0o600);
 */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const temporary = await writeTemporary(path, content, mode);
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/**
 * Creates `path` with `content` unless it exists, whole or not at all as {@link writeFileAtomic}
 * does, but with `link` in place of `rename`: of replicas racing to create the same file, exactly
 * one wins and the others learn it (`false`) instead of silently replacing its content.
 *
 * @example if (!(await createFileAtomic(join(dir, 'ca.pem'), pem, 0o644))) pem = await readFile(…);
 */
export async function createFileAtomic(
  path: string,
  content: string,
  mode: number,
): Promise<boolean> {
  const temporary = await writeTemporary(path, content, mode);
  try {
    await link(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
}

/** A temporary file beside `path` (created exclusively, `mode` set before any byte lands), synced. */
async function writeTemporary(path: string, content: string, mode: number): Promise<string> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(content);
    // open()'s mode is filtered by the umask: set it exactly.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temporary;
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdir (both forms) never returns for a
 * directory under /proc, where mkdir fails with ENOENT however often it is retried: a key, CA or
 * audit directory configured there hung the start. Here the first refusal is thrown. Returns the
 * first directory it created, as `mkdir(dir, { recursive: true })` does, or undefined when `dir`
 * already existed; `mode` applies to every directory it creates.
 *
 * @example if (makeDirectories(dir, 0o700)) chmodSync(dir, 0o700);
 */
export function makeDirectories(dir: string, mode = 0o777): string | undefined {
  const path = resolve(dir);
  if (existsSync(path)) return undefined;
  const parent = dirname(path);
  const first = parent === path ? undefined : makeDirectories(parent, mode);
  try {
    mkdirSync(path, { mode });
  } catch (error) {
    // A replica sharing the volume made it in the meantime.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return first;
  }
  return first ?? path;
}
