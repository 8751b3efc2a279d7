import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { JWK } from 'jose';
import pkcs11js from 'pkcs11js';
import type { KeysConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import {
  findObjects,
  findPair,
  generatePair,
  jwtKeyLabel,
  namedKeyLabel,
  objectId,
  parseJwtKeyLabel,
  readPublicJwk,
  setLabel,
} from './pkcs11-objects.js';
import { connectToken, type TokenConnection } from './pkcs11-session.js';
import { keyHandles, tokenSigner, type KeyHandles } from './pkcs11-signer.js';
import type { JwsAlgorithm, KeyRecord, KeyStore, Signer, SigningKey, StoredKey } from './types.js';

/**
 * Keys on a PKCS#11 token (an HSM, or SoftHSM2 in tests). Private keys are generated on the
 * token and never leave it; their rotation records live in their labels (pkcs11-objects.ts).
 */
export interface Pkcs11StoreOptions {
  config: KeysConfig;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Sessions in the pool; defaults to the libuv pool size, where C_SignAsync runs. */
  poolSize?: number;
}

/** The user PIN from `pinEnv` or `pinFile`: never from the config file, never logged. */
export async function readPin(config: KeysConfig, env: NodeJS.ProcessEnv): Promise<string> {
  if (config.pinEnv) {
    const pin = env[config.pinEnv];
    if (pin) return pin;
    if (!config.pinFile)
      throw new KeyStoreError(
        `PKCS#11 PIN: environment variable ${config.pinEnv} is not set`,
        'PIN_MISSING',
      );
  }
  if (config.pinFile) {
    const pin = (await readPinFile(config.pinFile)).trim();
    if (pin) return pin;
    throw new KeyStoreError(
      `PKCS#11 PIN: file ${config.pinFile} is missing or empty`,
      'PIN_MISSING',
    );
  }
  throw new KeyStoreError('PKCS#11 PIN: set keys.pinEnv or keys.pinFile', 'PIN_MISSING');
}

/** The PIN file's text, refused like a key file when other users may read or replace it. */
async function readPinFile(path: string): Promise<string> {
  // The mode is checked on the handle that is read, so the file cannot be swapped in between.
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const mode = (await handle.stat()).mode;
    if ((mode & 0o077) !== 0) {
      throw new KeyStoreError(
        `PKCS#11 PIN: file ${path} is accessible to other users (mode ${(mode & 0o777).toString(8)}); run chmod 600`,
        'PIN_FILE_MODE',
      );
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** What the store's operations share: the connection, and what was learnt from the token. */
interface TokenStore {
  token: TokenConnection;
  config: KeysConfig;
  logger: Logger;
  handles: KeyHandles;
  /** kid → CKA_ID, learnt from load() and create(). */
  ids: Map<string, Buffer>;
  /** CKA_ID (hex) and alg → public JWK: a public key never changes, so it is read once. */
  publicJwks: Map<string, JWK>;
}

export async function createPkcs11Store(options: Pkcs11StoreOptions): Promise<KeyStore> {
  const { config, logger } = options;
  if (!config.module) throw new KeyStoreError('PKCS#11: keys.module is required', 'MODULE_LOAD');
  const token = await connectToken({
    module: config.module,
    tokenLabel: config.tokenLabel,
    slot: config.slot,
    pin: await readPin(config, options.env),
    poolSize: options.poolSize ?? (Number(options.env.UV_THREADPOOL_SIZE) || 4),
    logger,
  });
  const store: TokenStore = {
    token,
    config,
    logger,
    handles: keyHandles(token),
    ids: new Map(),
    publicJwks: new Map(),
  };
  return {
    kind: 'pkcs11',
    load: () => token.withSession((session) => loadKeys(store, session)),
    create: (alg, record) => token.withSession((session) => createKey(store, session, alg, record)),
    save: (records) => token.withSession((session) => saveRecords(store, session, records)),
    remove: (kid) =>
      token.withSession((session, generation) => removeKey(store, session, generation, kid)),
    signer: (key) =>
      Promise.resolve(signerFor(store, idOf(store, key.kid), key.alg, key.publicJwk)),
    namedKey: (name, alg, create) =>
      token.withSession((session) => findNamedKey(store, session, name, alg, create)),
    ready: () => tokenReady(store),
    close: () => Promise.resolve(token.close()),
  };
}

function jwkOf(
  store: TokenStore,
  session: Buffer,
  publicKey: Buffer,
  id: Buffer,
  alg: JwsAlgorithm,
): JWK & { kid: string } {
  const cacheKey = `${id.toString('hex')}:${alg}`;
  let jwk = store.publicJwks.get(cacheKey);
  if (!jwk) {
    jwk = readPublicJwk(store.token.pkcs11, session, publicKey, alg);
    store.publicJwks.set(cacheKey, jwk);
  }
  if (typeof jwk.kid !== 'string')
    throw new KeyStoreError(`public key ${id.toString('hex')} has no kid`, 'KEY_MISSING');
  return { ...jwk, kid: jwk.kid };
}

function idOf(store: TokenStore, kid: string): Buffer {
  const id = store.ids.get(kid);
  if (!id) throw new KeyStoreError(`no key ${kid} on ${store.token.description}`, 'KEY_MISSING');
  return id;
}

function signerFor(store: TokenStore, id: Buffer, alg: JwsAlgorithm, publicJwk: JWK): Signer {
  return tokenSigner({
    token: store.token,
    handles: store.handles,
    id,
    alg,
    publicJwk,
    logger: store.logger,
  });
}

/** JWT signing keys are the public halves labelled `tessera:jwt:…`; the label is their record. */
function loadKeys(store: TokenStore, session: Buffer): StoredKey[] {
  const { pkcs11 } = store.token;
  const keys: StoredKey[] = [];
  const publicKeys = findObjects(pkcs11, session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
  ]);
  for (const publicKey of publicKeys) {
    const [label, id] = pkcs11.C_GetAttributeValue(session, publicKey, [
      { type: pkcs11js.CKA_LABEL },
      { type: pkcs11js.CKA_ID },
    ]);
    const record = parseJwtKeyLabel(
      Buffer.isBuffer(label?.value) ? label.value.toString('utf8') : '',
    );
    if (!record || !Buffer.isBuffer(id?.value)) continue;
    const publicJwk = jwkOf(store, session, publicKey, id.value, record.alg);
    store.ids.set(publicJwk.kid, id.value);
    keys.push({ ...record, kid: publicJwk.kid, publicJwk });
  }
  return keys.sort((a, b) => a.createdAt - b.createdAt);
}

function createKey(
  store: TokenStore,
  session: Buffer,
  alg: JwsAlgorithm,
  record: Omit<KeyRecord, 'kid' | 'alg'>,
): StoredKey {
  const id = randomBytes(16);
  const pair = generatePair(
    store.token.pkcs11,
    session,
    alg,
    store.config.rsaBits,
    jwtKeyLabel({ ...record, alg }),
    id,
  );
  const publicJwk = jwkOf(store, session, pair.publicKey, id, alg);
  store.ids.set(publicJwk.kid, id);
  store.logger.info(
    {
      kid: publicJwk.kid,
      alg,
      state: record.state,
      provider: 'pkcs11',
      hsmToken: store.token.description,
    },
    'signing key generated on the token',
  );
  return { ...record, kid: publicJwk.kid, alg, publicJwk };
}

function saveRecords(store: TokenStore, session: Buffer, records: KeyRecord[]): void {
  for (const record of records) {
    const { privateKey, publicKey } = findPair(
      store.token.pkcs11,
      session,
      idOf(store, record.kid),
    );
    // Public half last: it is the one load() reads, so a crash leaves the old state visible.
    setLabel(
      store.token.pkcs11,
      session,
      [privateKey, publicKey].filter((handle): handle is Buffer => handle !== undefined),
      jwtKeyLabel(record),
    );
  }
}

function removeKey(store: TokenStore, session: Buffer, generation: number, kid: string): void {
  const { pkcs11 } = store.token;
  const id = idOf(store, kid);
  store.handles.forget(id, session, generation);
  const { privateKey, publicKey } = findPair(pkcs11, session, id);
  if (privateKey) pkcs11.C_DestroyObject(session, privateKey);
  if (publicKey) pkcs11.C_DestroyObject(session, publicKey);
  store.ids.delete(kid);
}

/** A long-lived key found by its label (`tessera:named:<name>:<alg>`), generated when absent and asked to. */
function findNamedKey(
  store: TokenStore,
  session: Buffer,
  name: string,
  alg: JwsAlgorithm,
  create: boolean,
): SigningKey | undefined {
  const { pkcs11 } = store.token;
  const label = namedKeyLabel(name, alg);
  let [publicKey] = findObjects(pkcs11, session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  let id = publicKey ? objectId(pkcs11, session, publicKey) : undefined;
  if (!publicKey || !id) {
    if (!create) return undefined;
    id = randomBytes(16);
    publicKey = generatePair(pkcs11, session, alg, store.config.rsaBits, label, id).publicKey;
    store.logger.info(
      { name, alg, provider: 'pkcs11', hsmToken: store.token.description },
      'named key generated on the token',
    );
  }
  const publicJwk = jwkOf(store, session, publicKey, id, alg);
  return { kid: publicJwk.kid, alg, publicJwk, sign: signerFor(store, id, alg, publicJwk) };
}

async function tokenReady(store: TokenStore): Promise<boolean> {
  const { token } = store;
  // Down from a failed signature until the background recovery has the token back.
  if (!token.up()) return false;
  try {
    // A session alone survives a lost token, and so do session copies of keys; the token's own key objects do not.
    const found = await token.withSession(
      (session) =>
        findObjects(token.pkcs11, session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_TOKEN, value: true },
        ]).length,
    );
    if (found === 0 && store.ids.size > 0) token.markDown('CKR_KEY_HANDLE_INVALID');
    return token.up();
  } catch {
    return false;
  }
}
