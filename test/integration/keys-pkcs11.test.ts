import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLocalJWKSet, jwtVerify } from 'jose';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type KeysConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { createKeyProvider, publicJwks, signJws, type KeyProvider } from '../../src/keys/index.js';
import { createSoftHsmToken, skipSoftHsm, type SoftHsmToken } from '../support/softhsm.js';

/** What only an HSM can show: key attributes, PIN handling, sessions lost behind our back. */
const PIN_ENV = 'TESSERA_TEST_PKCS11_PIN';
let token: SoftHsmToken;
const logLines: string[] = [];
const logger = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  }),
});

const keysConfig = (keys: Record<string, unknown>): KeysConfig =>
  parseConfig({
    issuer: 'https://sts.test',
    audience: 'sts.test',
    keys: { provider: 'pkcs11', module: token.module, pinEnv: PIN_ENV, ...keys },
  }).keys;
const open = (
  label: string,
  pin = token.pin,
  keys: Record<string, unknown> = {},
): Promise<KeyProvider> =>
  createKeyProvider(
    keysConfig({ tokenLabel: label, dir: join(token.dir, 'keys-dir-never-used'), ...keys }),
    {
      logger,
      env: { [PIN_ENV]: pin },
      autoRotate: false,
    },
  );

/** A second, independent pkcs11js handle on the same module: what another process or an operator does. */
function otherHandle(label: string): { pkcs11: pkcs11js.PKCS11; slot: Buffer; session: Buffer } {
  const pkcs11 = new pkcs11js.PKCS11();
  pkcs11.load(token.module);
  try {
    pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED'))
      throw error;
  }
  const slot = pkcs11
    .C_GetSlotList(true)
    .find((candidate) => pkcs11.C_GetTokenInfo(candidate).label.trim() === label) as Buffer;
  const session = pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  return { pkcs11, slot, session };
}

async function signAndVerify(provider: KeyProvider, count = 1): Promise<void> {
  const jwks = createLocalJWKSet(await publicJwks(provider));
  const jwts = await Promise.all(
    Array.from({ length: count }, async (_, index) =>
      signJws(await provider.signingKey(index % 2 ? 'RS256' : 'ES256'), {}, { n: index }),
    ),
  );
  for (const jwt of jwts) await jwtVerify(jwt, jwks);
}

describe.skipIf(skipSoftHsm())('keys: pkcs11 (SoftHSM2)', () => {
  beforeAll(() => {
    token = createSoftHsmToken({ label: 'attributes' });
    for (const label of ['no-files', 'wrong-pin', 'closed-sessions', 'finalized', 'copies'])
      token.addToken(label);
  });
  afterAll(() => token?.cleanup());

  it('ok/signing-copies-stay-in-the-token-sensitive-unextractable-and-unsaved', async () => {
    const provider = await open('copies');
    try {
      await signAndVerify(provider, 6);
      // The same process sees the provider's session objects; another process never would.
      // Logged in already: a login is shared by every session of the process.
      const { pkcs11, session } = otherHandle('copies');
      const privateKeys = (onToken: boolean) => {
        pkcs11.C_FindObjectsInit(session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_TOKEN, value: onToken },
        ]);
        const found = pkcs11.C_FindObjects(session, 100);
        pkcs11.C_FindObjectsFinal(session);
        return found;
      };
      const copies = privateKeys(false);
      expect(copies).toHaveLength(2); // one per signing key (ES256, RS256), however many signatures
      expect(privateKeys(true)).toHaveLength(2);
      for (const copy of copies) {
        const values = pkcs11
          .C_GetAttributeValue(session, copy, [
            { type: pkcs11js.CKA_SENSITIVE },
            { type: pkcs11js.CKA_EXTRACTABLE },
          ])
          .map((attribute) => (Buffer.isBuffer(attribute.value) ? attribute.value[0] : undefined));
        expect(values).toEqual([1, 0]);
      }
    } finally {
      await provider.close();
    }
  });

  it('ok/private-keys-sensitive-and-never-extractable', async () => {
    const provider = await open('attributes');
    await provider.namedKey('x509-ca', 'ES256');
    await provider.close();
    const { pkcs11, session } = otherHandle('attributes');
    try {
      pkcs11.C_Login(session, pkcs11js.CKU_USER, token.pin);
      pkcs11.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      ]);
      const handles = pkcs11.C_FindObjects(session, 100);
      pkcs11.C_FindObjectsFinal(session);
      const flags = [
        pkcs11js.CKA_TOKEN,
        pkcs11js.CKA_PRIVATE,
        pkcs11js.CKA_SENSITIVE,
        pkcs11js.CKA_ALWAYS_SENSITIVE,
        pkcs11js.CKA_EXTRACTABLE,
        pkcs11js.CKA_NEVER_EXTRACTABLE,
      ];
      const rows = handles.map((handle) => {
        const attributes = pkcs11.C_GetAttributeValue(session, handle, [
          { type: pkcs11js.CKA_LABEL },
          ...flags.map((type) => ({ type })),
        ]);
        const [label, ...values] = attributes.map((attribute) =>
          Buffer.isBuffer(attribute.value) ? attribute.value : Buffer.alloc(0),
        );
        return {
          label: String(label).replace(/:\d+/g, ':T'),
          flags: values.map((value) => value[0]),
        };
      });
      expect(rows.sort((a, b) => a.label.localeCompare(b.label))).toEqual([
        { label: 'tessera:jwt:ES256:active:T:-:T:-', flags: [1, 1, 1, 1, 0, 1] },
        { label: 'tessera:jwt:RS256:active:T:-:T:-', flags: [1, 1, 1, 1, 0, 1] },
        { label: 'tessera:named:x509-ca:ES256', flags: [1, 1, 1, 1, 0, 1] },
      ]);
      for (const handle of handles) {
        const [keyType] = pkcs11.C_GetAttributeValue(session, handle, [
          { type: pkcs11js.CKA_KEY_TYPE },
        ]);
        const secret =
          (keyType?.value as Buffer).readUInt32LE(0) === pkcs11js.CKK_RSA
            ? pkcs11js.CKA_PRIVATE_EXPONENT
            : pkcs11js.CKA_VALUE;
        expect(() => pkcs11.C_GetAttributeValue(session, handle, [{ type: secret }])).toThrow(
          /CKR_ATTRIBUTE_SENSITIVE/,
        );
      }
    } finally {
      pkcs11.C_CloseSession(session);
    }
  });

  it.skipIf(!hasPkcs11Tool())('ok/pkcs11-tool-shows-sensitive-never-extractable', () => {
    const out = execFileSync(
      'pkcs11-tool',
      [
        '--module',
        token.module,
        '--token-label',
        'attributes',
        '--login',
        '--pin',
        token.pin,
        '--list-objects',
        '--type',
        'privkey',
      ],
      {
        env: process.env,
        encoding: 'utf8',
      },
    );
    const objects = out
      .split(/\n(?=Private Key Object)/)
      .filter((block) => block.startsWith('Private Key Object'));
    expect(objects).toHaveLength(3);
    for (const block of objects) {
      expect(block).toMatch(/Access:\s+.*\bsensitive\b/);
      expect(block).toMatch(/always sensitive/);
      expect(block).toMatch(/never extractable/);
      expect(block).not.toMatch(/(?<!never )\bextractable\b/);
    }
  });

  it('ok/no-private-key-file-on-disk', async () => {
    const before = listFiles(token.dir);
    const provider = await open('no-files');
    try {
      await signAndVerify(provider, 4);
      await provider.rotate({ immediate: true });
      await provider.namedKey('x509-ca', 'RS256');
    } finally {
      await provider.close();
    }
    expect(existsSync(join(token.dir, 'keys-dir-never-used'))).toBe(false);
    const created = listFiles(token.dir).filter((file) => !before.includes(file));
    // Only SoftHSM2's own object files (encrypted under the token's PIN-derived key) appear.
    expect(created.filter((file) => !file.includes(`${join(token.dir, 'tokens')}/`))).toEqual([]);
    for (const file of created) expect(readFileSync(file).includes('PRIVATE KEY')).toBe(false);
  });

  it('fail/wrong-pin-is-a-clear-start-up-error-without-the-pin', async () => {
    const wrongPin = 'wrong-pin-98765';
    const from = logLines.length;
    const failure = await open('wrong-pin', wrongPin).then(
      () => undefined,
      (error: unknown) => error as Error & { code: string },
    );
    expect(failure?.code).toBe('CKR_PIN_INCORRECT');
    expect(failure?.message).toBe(
      `PKCS#11 login for token "wrong-pin" failed: CKR_PIN_INCORRECT (module ${token.module})`,
    );
    expect(JSON.stringify({ message: failure?.message, stack: failure?.stack })).not.toContain(
      wrongPin,
    );
    expect(logLines.slice(from).join('')).not.toContain(wrongPin);
  });

  it.each([
    [
      'fail/missing-token',
      { tokenLabel: 'no-such-token' },
      'CKR_TOKEN_NOT_PRESENT',
      /token "no-such-token" not found: CKR_TOKEN_NOT_PRESENT/,
    ],
    [
      'fail/pin-env-unset',
      { tokenLabel: 'wrong-pin', pinEnv: 'TESSERA_TEST_UNSET_PIN' },
      'PIN_MISSING',
      /environment variable TESSERA_TEST_UNSET_PIN is not set/,
    ],
    [
      'fail/module-missing',
      { tokenLabel: 'wrong-pin', module: '/nonexistent/libpkcs11.so' },
      'MODULE_LOAD',
      /cannot load PKCS#11 module \/nonexistent\/libpkcs11.so/,
    ],
  ])('%s', async (_name, keys, code, message) => {
    const failure = createKeyProvider(keysConfig(keys), {
      logger,
      env: { [PIN_ENV]: token.pin },
      autoRotate: false,
    });
    await expect(failure).rejects.toMatchObject({
      code,
      message: expect.stringMatching(message) as unknown,
    });
  });

  it('ok/sessions-closed-behind-our-back-are-recovered', async () => {
    const provider = await open('closed-sessions');
    try {
      await signAndVerify(provider, 8);
      for (let round = 0; round < 3; round += 1) {
        const other = otherHandle('closed-sessions');
        other.pkcs11.C_CloseAllSessions(other.slot);
        await signAndVerify(provider, 16);
      }
      expect(await provider.ready()).toBe(true);
      expect(logLines.join('')).toContain('CKR_SESSION_HANDLE_INVALID');
    } finally {
      await provider.close();
    }
  });

  it('ok/library-finalized-behind-our-back-is-recovered', async () => {
    const provider = await open('finalized');
    try {
      await signAndVerify(provider, 4);
      const other = otherHandle('finalized');
      other.pkcs11.C_Finalize();
      await signAndVerify(provider, 8);
      expect(await provider.ready()).toBe(true);
    } finally {
      await provider.close();
    }
  });

  it('ok/no-log-line-carries-the-pin', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(token.pin);
  });
});

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => join(dir, entry))
    .filter((path) => statSync(path).isFile());
}

function hasPkcs11Tool(): boolean {
  try {
    execFileSync('pkcs11-tool', ['--help'], { stdio: 'pipe' });
    return true;
  } catch (error) {
    // pkcs11-tool --help exits non-zero but runs; only ENOENT means it is missing.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return true;
    if (process.env.CI === 'true')
      throw new Error('pkcs11-tool (Debian package opensc) is required under CI=true');
    console.warn(
      '[skipped] pkcs11-tool check: pkcs11-tool is not installed (apt-get install opensc)',
    );
    return false;
  }
}
