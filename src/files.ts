import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';

/**
 * Replaces `path` with `content` so that a reader (another replica, a restart after a crash)
 * sees the old file or the new one, never half of one: write a temporary file next to it
 * (created exclusively, with `mode` set before any byte lands), fsync, then rename over `path`.
 *
 * @example await writeFileAtomic(join(dir, 'state.json'), text, 0o600);
 */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
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
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
