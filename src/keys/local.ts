import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { z } from 'zod';
import { SIGNING_ALGORITHMS } from '../constants.js';
import { writeFileAtomic } from '../files.js';
import type { Logger } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import { jwkFromKeyObject } from './jwk.js';
import { recordOf } from './rotation.js';
import { generatePrivateKey, nodeSigner } from './signers.js';
import type { JwsAlgorithm, KeyStore, SigningKey, StoredKey } from './types.js';

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

export async function createLocalStore(options: LocalStoreOptions): Promise<KeyStore> {
  const { dir, rsaBits, logger } = options;
  await ensurePrivateDir(dir, logger);
  const loaded = new Map<string, LoadedKey>();

  const readKey = async (file: string, alg: JwsAlgorithm): Promise<LoadedKey> => {
    const path = join(dir, file);
    const cached = loaded.get(path);
    if (cached) return cached;
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new KeyStoreError(`key file ${path} is accessible to other users (mode ${(info.mode & 0o777).toString(8)}); run chmod 600`, 'KEY_FILE_MODE');
    }
    const privateKey = createPrivateKey(await readFile(path));
    const key = { privateKey, publicJwk: jwkFromKeyObject(privateKey, alg) };
    loaded.set(path, key);
    return key;
  };

  const writeKey = async (file: string, privateKey: KeyObject): Promise<void> => {
    await writeFileAtomic(join(dir, file), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  };

  const readState = async (): Promise<StateFile> => {
    let text: string;
    try {
      text = await readFile(join(dir, STATE_FILE), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: [] };
      throw error;
    }
    const parsed = stateSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new KeyStoreError(`${join(dir, STATE_FILE)} is invalid: ${parsed.error.issues[0]?.message ?? ''}`, 'STATE_INVALID');
    return parsed.data;
  };
  const writeState = (state: StateFile): Promise<void> => writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);

  return {
    kind: 'local',
    async load() {
      const state = await readState();
      const keys: StoredKey[] = [];
      for (const { file, ...record } of state.keys) {
        const { publicJwk } = await readKey(file, record.alg);
        if (publicJwk.kid !== record.kid) throw new KeyStoreError(`${join(dir, file)} does not hold key ${record.kid}`, 'KID_MISMATCH');
        keys.push({ ...record, publicJwk });
      }
      return keys;
    },
    async create(alg, record) {
      const privateKey = await generatePrivateKey(alg, rsaBits);
      const publicJwk = jwkFromKeyObject(privateKey, alg);
      const kid = publicJwk.kid as string;
      const file = `${alg}-${kid}.pem`;
      // Key file first: a crash before the state write leaves an unused file, never a record without a key.
      await writeKey(file, privateKey);
      loaded.set(join(dir, file), { privateKey, publicJwk });
      const state = await readState();
      const stored: StoredKey = { ...recordOf({ ...record, kid, alg }), publicJwk };
      state.keys.push({ ...recordOf({ ...record, kid, alg }), file });
      await writeState(state);
      logger.info({ kid, alg, state: record.state, provider: 'local' }, 'signing key created');
      return stored;
    },
    async save(records) {
      const state = await readState();
      const byKid = new Map(records.map((record) => [record.kid, record]));
      state.keys = state.keys.map((entry) => {
        const update = byKid.get(entry.kid);
        return update ? { ...recordOf(update), file: entry.file } : entry;
      });
      await writeState(state);
    },
    async remove(kid) {
      const state = await readState();
      const entry = state.keys.find((key) => key.kid === kid);
      if (!entry) return;
      state.keys = state.keys.filter((key) => key.kid !== kid);
      await writeState(state);
      loaded.delete(join(dir, entry.file));
      await unlink(join(dir, entry.file)).catch(() => undefined);
    },
    async signer(key) {
      const entry = (await readState()).keys.find((candidate) => candidate.kid === key.kid);
      if (!entry) throw new KeyStoreError(`no key ${key.kid} in ${dir}`, 'KEY_MISSING');
      return nodeSigner((await readKey(entry.file, key.alg)).privateKey, key.alg);
    },
    async namedKey(name, alg, create) {
      if (!NAME.test(name)) throw new KeyStoreError(`invalid key name ${JSON.stringify(name)}`, 'KEY_NAME');
      const file = `named-${name}-${alg}.pem`;
      let key: LoadedKey;
      try {
        key = await readKey(file, alg);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !create) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw error;
        }
        const privateKey = await generatePrivateKey(alg, rsaBits);
        await writeKey(file, privateKey);
        key = await readKey(file, alg);
        logger.info({ kid: key.publicJwk.kid, alg, name, provider: 'local' }, 'named key created');
      }
      return namedSigningKey(key, alg);
    },
    tryLock: () => tryLockFile(join(dir, LOCK_FILE)),
    ready: () => Promise.resolve(true),
    close() {
      loaded.clear();
      return Promise.resolve();
    },
  };
}

function namedSigningKey(key: LoadedKey, alg: JwsAlgorithm): SigningKey {
  return { kid: key.publicJwk.kid as string, alg, publicJwk: key.publicJwk, sign: nodeSigner(key.privateKey, alg) };
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
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (created) {
    await chmod(dir, 0o700);
    return;
  }
  const info = await stat(dir);
  if ((info.mode & 0o077) !== 0) logger.warn({ dir, mode: (info.mode & 0o777).toString(8) }, 'key directory is accessible to other users; chmod 700 recommended');
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
