import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { JWK } from 'jose';
import pkcs11js from 'pkcs11js';
import type { KeysConfig } from '../config/index.js';
import { temporarilyUnavailable } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import { findObjects, findPair, generatePair, jwtKeyLabel, namedKeyLabel, parseJwtKeyLabel, readPublicJwk, setLabel, signMechanism } from './pkcs11-objects.js';
import { connectToken, pkcs11Code, type TokenConnection } from './pkcs11-session.js';
import { errorSummary } from './provider.js';
import type { JwsAlgorithm, KeyStore, Signer, SigningKey, StoredKey } from './types.js';

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
    if (!config.pinFile) throw new KeyStoreError(`PKCS#11 PIN: environment variable ${config.pinEnv} is not set`, 'PIN_MISSING');
  }
  if (config.pinFile) {
    const pin = (await readPinFile(config.pinFile)).trim();
    if (pin) return pin;
    throw new KeyStoreError(`PKCS#11 PIN: file ${config.pinFile} is missing or empty`, 'PIN_MISSING');
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
      throw new KeyStoreError(`PKCS#11 PIN: file ${path} is accessible to other users (mode ${(mode & 0o777).toString(8)}); run chmod 600`, 'PIN_FILE_MODE');
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export async function createPkcs11Store(options: Pkcs11StoreOptions): Promise<KeyStore> {
  const { config, logger } = options;
  const token = await connectToken({
    module: config.module as string,
    tokenLabel: config.tokenLabel,
    slot: config.slot,
    pin: await readPin(config, options.env),
    poolSize: options.poolSize ?? (Number(options.env.UV_THREADPOOL_SIZE) || 4),
    logger,
  });
  const { pkcs11 } = token;
  /** kid → CKA_ID, learnt from load() and create(). */
  const ids = new Map<string, Buffer>();
  /** CKA_ID (hex) → public JWK: a public key never changes, so it is read once. */
  const publicJwks = new Map<string, JWK>();

  const jwkOf = (session: Buffer, publicKey: Buffer, id: Buffer, alg: JwsAlgorithm): JWK => {
    const cacheKey = `${id.toString('hex')}:${alg}`;
    let jwk = publicJwks.get(cacheKey);
    if (!jwk) {
      jwk = readPublicJwk(pkcs11, session, publicKey, alg);
      publicJwks.set(cacheKey, jwk);
    }
    return jwk;
  };

  const idOf = (kid: string): Buffer => {
    const id = ids.get(kid);
    if (!id) throw new KeyStoreError(`no key ${kid} on ${token.description}`, 'KEY_MISSING');
    return id;
  };

  const store: KeyStore = {
    kind: 'pkcs11',
    load() {
      return token.withSession((session) => {
        const keys: StoredKey[] = [];
        for (const publicKey of findObjects(pkcs11, session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }])) {
          const [label, id] = pkcs11.C_GetAttributeValue(session, publicKey, [{ type: pkcs11js.CKA_LABEL }, { type: pkcs11js.CKA_ID }]);
          const record = parseJwtKeyLabel((label?.value as Buffer | undefined)?.toString('utf8') ?? '');
          if (!record || !id?.value) continue;
          const publicJwk = jwkOf(session, publicKey, id.value as Buffer, record.alg);
          const kid = publicJwk.kid as string;
          ids.set(kid, id.value as Buffer);
          keys.push({ ...record, kid, publicJwk });
        }
        return keys.sort((a, b) => a.createdAt - b.createdAt);
      });
    },
    create(alg, record) {
      return token.withSession((session) => {
        const id = randomBytes(16);
        const pair = generatePair(pkcs11, session, alg, config.rsaBits, jwtKeyLabel({ ...record, alg }), id);
        const publicJwk = jwkOf(session, pair.publicKey, id, alg);
        const kid = publicJwk.kid as string;
        ids.set(kid, id);
        logger.info({ kid, alg, state: record.state, provider: 'pkcs11', token: token.description }, 'signing key generated on the token');
        return { ...record, kid, alg, publicJwk };
      });
    },
    save(records) {
      return token.withSession((session) => {
        for (const record of records) {
          const { privateKey, publicKey } = findPair(pkcs11, session, idOf(record.kid));
          // Public half last: it is the one load() reads, so a crash leaves the old state visible.
          setLabel(pkcs11, session, [privateKey, publicKey].filter((handle): handle is Buffer => handle !== undefined), jwtKeyLabel(record));
        }
      });
    },
    remove(kid) {
      return token.withSession((session) => {
        const { privateKey, publicKey } = findPair(pkcs11, session, idOf(kid));
        if (privateKey) pkcs11.C_DestroyObject(session, privateKey);
        if (publicKey) pkcs11.C_DestroyObject(session, publicKey);
        ids.delete(kid);
      });
    },
    async signer(key) {
      return tokenSigner(token, idOf(key.kid), key.alg, key.publicJwk, logger);
    },
    namedKey(name, alg, create) {
      return token.withSession((session): SigningKey | undefined => {
        const label = namedKeyLabel(name, alg);
        let [publicKey] = findObjects(pkcs11, session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
          { type: pkcs11js.CKA_LABEL, value: label },
        ]);
        let id: Buffer;
        if (publicKey) {
          id = pkcs11.C_GetAttributeValue(session, publicKey, [{ type: pkcs11js.CKA_ID }])[0]?.value as Buffer;
        } else {
          if (!create) return undefined;
          id = randomBytes(16);
          publicKey = generatePair(pkcs11, session, alg, config.rsaBits, label, id).publicKey;
          logger.info({ name, alg, provider: 'pkcs11', token: token.description }, 'named key generated on the token');
        }
        const publicJwk = jwkOf(session, publicKey, id, alg);
        return { kid: publicJwk.kid as string, alg, publicJwk, sign: tokenSigner(token, id, alg, publicJwk, logger) };
      });
    },
    async ready() {
      // Down from a failed signature until the background recovery has the token back.
      if (!token.up()) return false;
      try {
        // A session alone survives a lost token; finding our keys does not.
        const found = await token.withSession((session) => findObjects(pkcs11, session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]).length);
        if (found === 0 && ids.size > 0) token.markDown('CKR_KEY_HANDLE_INVALID');
        return token.up();
      } catch {
        return false;
      }
    },
    async close() {
      token.close();
    },
  };
  return store;
}

/**
 * Signs with the private key whose CKA_ID is `id`. The handle is found once per session
 * generation (a label search costs ~90 µs); C_SignAsync runs on the libuv pool.
 */
function tokenSigner(token: TokenConnection, id: Buffer, alg: JwsAlgorithm, publicJwk: JWK, logger: Logger): Signer {
  const { pkcs11 } = token;
  const mechanism = signMechanism(alg);
  const signatureLength = alg === 'ES256' ? 64 : Buffer.from(publicJwk.n as string, 'base64url').length;
  let cached: { generation: number; handle: Buffer } | undefined;
  return async (data) => {
    const input = alg === 'ES256' ? createHash('sha256').update(data).digest() : Buffer.from(data);
    try {
      return await token.withSession(async (session, generation) => {
        if (cached?.generation !== generation) {
          const { privateKey } = findPair(pkcs11, session, id);
          if (!privateKey) throw new KeyStoreError(`private key ${String(publicJwk.kid)} not found on ${token.description}`, 'KEY_MISSING');
          cached = { generation, handle: privateKey };
        }
        pkcs11.C_SignInit(session, mechanism, cached.handle);
        return new Uint8Array(await pkcs11.C_SignAsync(session, input, Buffer.alloc(signatureLength)));
      });
    } catch (error) {
      logger.error({ kid: publicJwk.kid, alg, token: token.description, err: errorSummary(error) }, 'HSM signing failed');
      throw temporarilyUnavailable('signing key unavailable', { detail: { kid: publicJwk.kid, code: pkcs11Code(error) }, cause: error });
    }
  };
}
