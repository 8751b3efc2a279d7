import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { chmod, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { z } from 'zod';
import { SIGNING_ALGORITHMS } from '../constants.js';
import { makeDirectories, writeFileAtomic } from '../files.js';
import type { Logger } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import { jwkFromKeyObject } from './jwk.js';
import { recordOf } from './rotation.js';
import { generatePrivateKey, nodeSigner } from './signers.js';
import type { JwsAlgorithm, KeyRecord, KeyStore, Signer, SigningKey, StoredKey } from './types.js';

/**
 * Software keys in a directory (0700): one PKCS#8 PEM file per key (0600) and `state.json`,
 * the rotation records every replica sharing the directory reads. Files are written to a
 * temporary name and renamed, so a crash never leaves half a key or half a state.
 */
export interface LocalStoreOptions {
  dir: string;
  rsaBits: number;
  logger: Logger;
}

const STATE_FILE = 'state.json';
const LOCK_FILE = 'rotation.lock';
/** A lock file older than this was left by a crashed process. */
const STALE_LOCK_MS = 60_000;
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

const stateSchema = z.strictObject({
  version: z.literal(1),
  keys: z.array(
    z.strictObject({
      kid: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
      alg: z.enum(SIGNING_ALGORITHMS),
      state: z.enum(['next', 'active', 'retired']),
      createdAt: z.number(),
      activateAt: z.number().optional(),
      activatedAt: z.number().optional(),
      retiredAt: z.number().optional(),
      file: z.string().regex(/^[A-Za-z0-9_.-]+\.pem$/),
    }),
  ),
});
type StateFile = z.infer<typeof stateSchema>;

interface LoadedKey {
  privateKey: KeyObject;
  publicJwk: JWK;
}

/** What the store's operations share: the directory, and the keys read from it so far. */
interface LocalDir {
  dir: string;
  rsaBits: number;
  logger: Logger;
  /** path → key: a key file never changes once written, so it is read once. */
  loaded: Map<string, LoadedKey>;
}

export async function createLocalStore(options: LocalStoreOptions): Promise<KeyStore> {
  const { dir, rsaBits, logger } = options;
  await ensurePrivateDir(dir, logger);
  const local: LocalDir = { dir, rsaBits, logger, loaded: new Map() };
  return {
    kind: 'local',
    load: () => loadKeys(local),
    create: (alg, record) => createKey(local, alg, record),
    save: (records) => saveRecords(local, records),
    remove: (kid) => removeKey(local, kid),
    signer: (key) => signerFor(local, key),
    namedKey: (name, alg, create) => findNamedKey(local, name, alg, create),
    tryLock: () => tryLockFile(join(dir, LOCK_FILE)),
    ready: () => Promise.resolve(true),
    close() {
      local.loaded.clear();
      return Promise.resolve();
    },
  };
}

/** A key file, refused (like ssh does) when other users may read it. */
async function readKey(local: LocalDir, file: string, alg: JwsAlgorithm): Promise<LoadedKey> {
  const path = join(local.dir, file);
  const cached = local.loaded.get(path);
  if (cached) return cached;
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) {
    throw new KeyStoreError(
      `key file ${path} is accessible to other users (mode ${(info.mode & 0o777).toString(8)}); run chmod 600`,
      'KEY_FILE_MODE',
    );
  }
  const privateKey = createPrivateKey(await readFile(path));
  const key = { privateKey, publicJwk: jwkFromKeyObject(privateKey, alg) };
  local.loaded.set(path, key);
  return key;
}

async function writeKey(local: LocalDir, file: string, privateKey: KeyObject): Promise<void> {
  await writeFileAtomic(
    join(local.dir, file),
    privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    0o600,
  );
}

async function readState(local: LocalDir): Promise<StateFile> {
  let text: string;
  try {
    text = await readFile(join(local.dir, STATE_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: [] };
    throw error;
  }
  const parsed = stateSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new KeyStoreError(
      `${join(local.dir, STATE_FILE)} is invalid: ${parsed.error.issues[0]?.message ?? ''}`,
      'STATE_INVALID',
    );
  return parsed.data;
}

const writeState = (local: LocalDir, state: StateFile): Promise<void> =>
  writeFileAtomic(join(local.dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);

async function loadKeys(local: LocalDir): Promise<StoredKey[]> {
  const state = await readState(local);
  const keys: StoredKey[] = [];
  for (const { file, ...record } of state.keys) {
    const { publicJwk } = await readKey(local, file, record.alg);
    if (publicJwk.kid !== record.kid)
      throw new KeyStoreError(
        `${join(local.dir, file)} does not hold key ${record.kid}`,
        'KID_MISMATCH',
      );
    keys.push({ ...record, publicJwk });
  }
  return keys;
}

async function createKey(
  local: LocalDir,
  alg: JwsAlgorithm,
  record: Omit<KeyRecord, 'kid' | 'alg'>,
): Promise<StoredKey> {
  const privateKey = await generatePrivateKey(alg, local.rsaBits);
  const publicJwk = jwkFromKeyObject(privateKey, alg);
  const kid = String(publicJwk.kid);
  const file = `${alg}-${kid}.pem`;
  // Key file first: a crash before the state write leaves an unused file, never a record without a key.
  await writeKey(local, file, privateKey);
  local.loaded.set(join(local.dir, file), { privateKey, publicJwk });
  const state = await readState(local);
  state.keys.push({ ...recordOf({ ...record, kid, alg }), file });
  await writeState(local, state);
  local.logger.info({ kid, alg, state: record.state, provider: 'local' }, 'signing key created');
  return { ...recordOf({ ...record, kid, alg }), publicJwk };
}

async function saveRecords(local: LocalDir, records: KeyRecord[]): Promise<void> {
  const state = await readState(local);
  const byKid = new Map(records.map((record) => [record.kid, record]));
  state.keys = state.keys.map((entry) => {
    const update = byKid.get(entry.kid);
    return update ? { ...recordOf(update), file: entry.file } : entry;
  });
  await writeState(local, state);
}

async function removeKey(local: LocalDir, kid: string): Promise<void> {
  const state = await readState(local);
  const entry = state.keys.find((key) => key.kid === kid);
  if (!entry) return;
  state.keys = state.keys.filter((key) => key.kid !== kid);
  await writeState(local, state);
  local.loaded.delete(join(local.dir, entry.file));
  await unlink(join(local.dir, entry.file)).catch(() => undefined);
}

async function signerFor(local: LocalDir, key: StoredKey): Promise<Signer> {
  const entry = (await readState(local)).keys.find((candidate) => candidate.kid === key.kid);
  if (!entry) throw new KeyStoreError(`no key ${key.kid} in ${local.dir}`, 'KEY_MISSING');
  return nodeSigner((await readKey(local, entry.file, key.alg)).privateKey, key.alg);
}

/** A long-lived key in `named-<name>-<alg>.pem`, created when absent and asked to. */
async function findNamedKey(
  local: LocalDir,
  name: string,
  alg: JwsAlgorithm,
  create: boolean,
): Promise<SigningKey | undefined> {
  if (!NAME.test(name))
    throw new KeyStoreError(`invalid key name ${JSON.stringify(name)}`, 'KEY_NAME');
  const file = `named-${name}-${alg}.pem`;
  let key: LoadedKey;
  try {
    key = await readKey(local, file, alg);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!create) return undefined;
    await writeKey(local, file, await generatePrivateKey(alg, local.rsaBits));
    key = await readKey(local, file, alg);
    local.logger.info(
      { kid: key.publicJwk.kid, alg, name, provider: 'local' },
      'named key created',
    );
  }
  return namedSigningKey(key, alg);
}

function namedSigningKey(key: LoadedKey, alg: JwsAlgorithm): SigningKey {
  return {
    kid: String(key.publicJwk.kid),
    alg,
    publicJwk: key.publicJwk,
    sign: nodeSigner(key.privateKey, alg),
  };
}

/**
 * A signing key for a private key held in memory (the dev cluster's), with the same JWK, kid
 * and signature form as the keys the broker issues with.
 *
 * @example const jwt = await signJws(signingKeyFromPrivateKey(privateKey, 'ES256'), {}, claims);
 */
export function signingKeyFromPrivateKey(privateKey: KeyObject, alg: JwsAlgorithm): SigningKey {
  return namedSigningKey({ privateKey, publicJwk: jwkFromKeyObject(privateKey, alg) }, alg);
}

async function ensurePrivateDir(dir: string, logger: Logger): Promise<void> {
  if (makeDirectories(dir, 0o700)) {
    await chmod(dir, 0o700);
    return;
  }
  const info = await stat(dir);
  if ((info.mode & 0o077) !== 0)
    logger.warn(
      { dir, mode: (info.mode & 0o777).toString(8) },
      'key directory is accessible to other users; chmod 700 recommended',
    );
}

/** `O_EXCL` create: works across processes (and NFS v3+) sharing the key directory. */
async function tryLockFile(path: string): Promise<(() => Promise<void>) | undefined> {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const handle = await open(path, 'wx', 0o600);
      const owner = `${process.pid} ${randomUUID()}\n`;
      await handle.writeFile(owner);
      await handle.close();
      // Released only while it is still ours: after a stale takeover it belongs to a peer.
      return async () => {
        const current = await readFile(path, 'utf8').catch(() => undefined);
        if (current === owner) await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const info = await stat(path).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs < STALE_LOCK_MS) return undefined;
      await unlink(path).catch(() => undefined);
    }
  }
  return undefined;
}
