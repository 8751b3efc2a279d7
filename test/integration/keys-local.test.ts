import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type KeysConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { createKeyProvider, signJws } from '../../src/keys/index.js';

/** What only the local store has: files, their modes, and the state file beside them. */
const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function fresh(): { dir: string; config: KeysConfig } {
  const root = mkdtempSync(join(tmpdir(), 'tessera-local-keys-'));
  roots.push(root);
  const dir = join(root, 'nested', 'keys');
  return {
    dir,
    config: parseConfig({
      issuer: 'https://sts.test',
      audience: 'sts.test',
      keys: { provider: 'local', dir, algorithms: ['ES256', 'RS256', 'PS256'] },
    }).keys,
  };
}

function capture(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ level: 'trace', destination }), text: () => lines.join('') };
}

describe('keys: local store', () => {
  it('ok/dir-0700-files-0600-one-pem-per-key-and-a-state-file', async () => {
    const { dir, config } = fresh();
    const provider = await createKeyProvider(config, {
      logger: capture().logger,
      autoRotate: false,
    });
    await provider.namedKey('x509-ca', 'ES256');
    await provider.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const files = readdirSync(dir).sort();
    expect(files.map((file) => file.replace(/-[A-Za-z0-9_-]{43}\.pem$/, '-KID.pem'))).toEqual([
      'ES256-KID.pem',
      'PS256-KID.pem',
      'RS256-KID.pem',
      'named-x509-ca-ES256.pem',
      'state.json',
    ]);
    for (const file of files)
      expect(`${file} ${(statSync(join(dir, file)).mode & 0o777).toString(8)}`).toBe(`${file} 600`);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {
      version: number;
      keys: Array<Record<string, unknown>>;
    };
    expect(state.version).toBe(1);
    expect(
      state.keys.map((key) => [
        key.alg,
        key.state,
        key.file === `${String(key.alg)}-${String(key.kid)}.pem`,
      ]),
    ).toEqual([
      ['ES256', 'active', true],
      ['RS256', 'active', true],
      ['PS256', 'active', true],
    ]);
  });

  it('ok/no-key-material-in-logs', async () => {
    const { dir, config } = fresh();
    const log = capture();
    const provider = await createKeyProvider(config, { logger: log.logger, autoRotate: false });
    await signJws(await provider.signingKey('ES256'), {}, { sub: 'x' });
    await provider.rotate({ immediate: true });
    await provider.close();
    const secrets = readdirSync(dir)
      .filter((file) => file.endsWith('.pem'))
      .map((file) => readFileSync(join(dir, file), 'utf8').split('\n')[1] as string);
    expect(log.text()).toContain('signing key created');
    expect(log.text()).not.toContain('PRIVATE KEY');
    for (const line of secrets) expect(log.text()).not.toContain(line);
  });

  it('fail/key-file-readable-by-others', async () => {
    const { dir, config } = fresh();
    await (
      await createKeyProvider(config, { logger: capture().logger, autoRotate: false })
    ).close();
    const keyFile = readdirSync(dir).find((file) => file.startsWith('ES256-')) as string;
    chmodSync(join(dir, keyFile), 0o644);
    await expect(
      createKeyProvider(config, { logger: capture().logger, autoRotate: false }),
    ).rejects.toMatchObject({
      code: 'KEY_FILE_MODE',
      message: `key file ${join(dir, keyFile)} is accessible to other users (mode 644); run chmod 600`,
    });
  });

  it('fail/state-names-a-key-the-file-does-not-hold', async () => {
    const { dir, config } = fresh();
    await (
      await createKeyProvider(config, { logger: capture().logger, autoRotate: false })
    ).close();
    const statePath = join(dir, 'state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { keys: Array<{ kid: string }> };
    const [first, second] = state.keys as [{ kid: string }, { kid: string }];
    [first.kid, second.kid] = [second.kid, first.kid];
    writeFileSync(statePath, JSON.stringify(state));
    await expect(
      createKeyProvider(config, { logger: capture().logger, autoRotate: false }),
    ).rejects.toMatchObject({ code: 'KID_MISMATCH' });
  });

  it('ok/lock-file-stops-a-second-process-and-a-stale-one-is-taken-over', async () => {
    const { dir, config } = fresh();
    const provider = await createKeyProvider(config, {
      logger: capture().logger,
      autoRotate: false,
    });
    try {
      const lock = join(dir, 'rotation.lock');
      writeFileSync(lock, '4242\n');
      await expect(provider.rotate()).rejects.toMatchObject({ code: 'ROTATION_LOCKED' });
      expect((await provider.list()).map((info) => info.state)).toEqual([
        'active',
        'active',
        'active',
      ]);
      const twoMinutesAgo = Date.now() / 1000 - 120;
      utimesSync(lock, twoMinutesAgo, twoMinutesAgo);
      expect((await provider.rotate()).map((info) => info.state)).toEqual([
        'active',
        'active',
        'active',
        'next',
        'next',
        'next',
      ]);
      expect(existsSync(lock)).toBe(false);
    } finally {
      await provider.close();
    }
  });

  it('fail/state-file-invalid', async () => {
    const { dir, config } = fresh();
    await (
      await createKeyProvider(config, { logger: capture().logger, autoRotate: false })
    ).close();
    writeFileSync(
      join(dir, 'state.json'),
      JSON.stringify({ version: 1, keys: [{ kid: 'x', alg: 'HS256' }] }),
      { mode: 0o600 },
    );
    await expect(
      createKeyProvider(config, { logger: capture().logger, autoRotate: false }),
    ).rejects.toMatchObject({ code: 'STATE_INVALID' });
  });
});
