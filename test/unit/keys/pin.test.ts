import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { readPin } from '../../../src/keys/pkcs11.js';

/** The PKCS#11 user PIN: from the environment or a file only its owner can read or write. */
const root = mkdtempSync(join(tmpdir(), 'tessera-pin-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PIN = 'pin-4711-secret';
const config = (keys: Record<string, unknown>) =>
  parseConfig({
    issuer: 'https://sts.test',
    audience: 'sts.test',
    keys: { provider: 'pkcs11', module: '/nonexistent/lib.so', tokenLabel: 't', ...keys },
  }).keys;
const pinFile = (name: string, mode: number, text = `${PIN}\n`): string => {
  const path = join(root, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
};

describe('keys: readPin', () => {
  const ok: Array<[string, () => Record<string, unknown>, NodeJS.ProcessEnv]> = [
    ['ok/pin-env', () => ({ pinEnv: 'PIN' }), { PIN }],
    ['ok/pin-file-0600', () => ({ pinFile: pinFile('600', 0o600) }), {}],
    ['ok/pin-file-0400', () => ({ pinFile: pinFile('400', 0o400) }), {}],
    [
      'ok/pin-env-unset-falls-back-to-the-file',
      () => ({ pinEnv: 'PIN', pinFile: pinFile('fallback', 0o600) }),
      {},
    ],
  ];
  it.each(ok)('%s', async (_name, keys, env) => {
    expect(await readPin(config(keys()), env)).toBe(PIN);
  });

  const fail: Array<[string, () => string, string, (path: string) => string]> = [
    [
      'fail/pin-file-group-readable',
      () => pinFile('640', 0o640),
      'PIN_FILE_MODE',
      (path) => `PKCS#11 PIN: file ${path} is accessible to other users (mode 640); run chmod 600`,
    ],
    [
      'fail/pin-file-group-writable',
      () => pinFile('620', 0o620),
      'PIN_FILE_MODE',
      (path) => `PKCS#11 PIN: file ${path} is accessible to other users (mode 620); run chmod 600`,
    ],
    [
      'fail/pin-file-world-readable',
      () => pinFile('604', 0o604),
      'PIN_FILE_MODE',
      (path) => `PKCS#11 PIN: file ${path} is accessible to other users (mode 604); run chmod 600`,
    ],
    [
      'fail/pin-file-world-writable',
      () => pinFile('602', 0o602),
      'PIN_FILE_MODE',
      (path) => `PKCS#11 PIN: file ${path} is accessible to other users (mode 602); run chmod 600`,
    ],
    [
      'fail/pin-file-missing',
      () => join(root, 'absent'),
      'PIN_MISSING',
      (path) => `PKCS#11 PIN: file ${path} is missing or empty`,
    ],
    [
      'fail/pin-file-empty',
      () => pinFile('empty', 0o600, '\n'),
      'PIN_MISSING',
      (path) => `PKCS#11 PIN: file ${path} is missing or empty`,
    ],
  ];
  it.each(fail)('%s', async (_name, makeFile, code, message) => {
    const path = makeFile();
    const failure = (await readPin(config({ pinFile: path }), {}).then(
      () => undefined,
      (error: unknown) => error,
    )) as { code?: string; message?: string; stack?: string } | undefined;
    expect({ code: failure?.code, message: failure?.message }).toEqual({
      code,
      message: message(path),
    });
    expect(`${failure?.message}${failure?.stack}`).not.toContain(PIN);
  });
});
