import {
  mkdirSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditLog, createLogger, type AuditEvent } from '../../../src/observability/index.js';

const event = (requestId: string): AuditEvent => ({
  event: 'token_exchange',
  requestId,
  outcome: 'error',
  status: 400,
  durationMs: 1,
});

/** Paths this process holds open, from /proc/self/fd. */
function openPaths(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return [];
    }
  });
}

/** Lets the closes the stream queued on the libuv pool finish. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

describe('audit file reopen (SIGHUP)', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a failed reopen keeps the open file, and the next good one closes it exactly once', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-audit-reopen-'));
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
          callback();
        },
      }),
    });
    const file = join(dir, 'audit', 'events.log');
    const audit = createAuditLog({ file, logger });
    audit.write(event('one'));
    renameSync(join(dir, 'audit'), join(dir, 'audit.old'));
    writeFileSync(join(dir, 'audit'), '');
    audit.reopen();
    audit.write(event('two'));
    rmSync(join(dir, 'audit'));
    mkdirSync(join(dir, 'audit'));
    audit.reopen();
    audit.write(event('three'));
    await settle();
    const ids = (path: string) =>
      readFileSync(path, 'utf8')
        .trimEnd()
        .split('\n')
        .map((line) => (JSON.parse(line) as { requestId: string }).requestId);
    expect(ids(join(dir, 'audit.old', 'events.log'))).toEqual(['one', 'two']);
    expect(ids(file)).toEqual(['three']);
    expect(openPaths()).not.toContain(join(dir, 'audit.old', 'events.log'));
    const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    // One line for the failed reopen and one for the good one; nothing closed twice (EBADF).
    expect(messages).toEqual([
      'audit file could not be reopened: events go on to the file already open',
      'audit file reopened',
    ]);
    await audit.close();
  });
});
