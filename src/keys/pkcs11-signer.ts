import { createHash } from 'node:crypto';
import type { JWK } from 'jose';
import type pkcs11js from 'pkcs11js';
import { temporarilyUnavailable } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { KeyStoreError } from './errors.js';
import { findPair, sessionCopy, signMechanism } from './pkcs11-objects.js';
import { pkcs11Code, type TokenConnection } from './pkcs11-session.js';
import { errorSummary } from './errors.js';
import type { JwsAlgorithm, Signer } from './types.js';

/**
 * How a JWS is signed on a PKCS#11 token, per request: the private key's handle is found once
 * per session generation (a label search costs ~90 µs; SoftHSM2 hands out new handles after a
 * re-login), the mechanism object is built once per key, and nothing else is prepared per call.
 *
 * On a software token (SoftHSM2) the handle is a session copy of the key (see `sessionCopy`)
 * and an ES256 signature runs in-line on a free session, as node:crypto's does: ~30 µs of work
 * costs less there than a trip through the libuv pool and back. RSA, and every signature on a
 * hardware token (where the time is spent in the device), go through `C_SignAsync` on the pool.
 */
export interface KeyHandles {
  /** The handle to sign with for the key whose CKA_ID is `id`, in this session generation. */
  get(id: Buffer, session: Buffer, generation: number): Buffer;
  /** Drops the key's handle (the key is being removed), destroying its session copy. */
  forget(id: Buffer, session: Buffer, generation: number): void;
}

interface Handle {
  generation: number;
  handle: Buffer;
  copy: boolean;
}

export function keyHandles(token: TokenConnection): KeyHandles {
  const { pkcs11 } = token;
  const handles = new Map<string, Handle>();
  return {
    get(id, session, generation) {
      const key = id.toString('hex');
      const cached = handles.get(key);
      if (cached?.generation === generation) return cached.handle;
      const { privateKey } = findPair(pkcs11, session, id);
      if (!privateKey)
        throw new KeyStoreError(
          `private key ${key} not found on ${token.description}`,
          'KEY_MISSING',
        );
      const copy = token.software ? sessionCopy(pkcs11, session, privateKey) : undefined;
      handles.set(key, { generation, handle: copy ?? privateKey, copy: copy !== undefined });
      return copy ?? privateKey;
    },
    forget(id, session, generation) {
      const key = id.toString('hex');
      const cached = handles.get(key);
      handles.delete(key);
      if (cached?.copy && cached.generation === generation)
        destroyQuietly(pkcs11, session, cached.handle);
    },
  };
}

function destroyQuietly(pkcs11: pkcs11js.PKCS11, session: Buffer, handle: Buffer): void {
  try {
    pkcs11.C_DestroyObject(session, handle);
  } catch {
    // Gone with its session already.
  }
}

export interface TokenSignerOptions {
  token: TokenConnection;
  handles: KeyHandles;
  /** The CKA_ID of the pair. */
  id: Buffer;
  alg: JwsAlgorithm;
  publicJwk: JWK;
  logger: Logger;
}

/** Signs with the private key whose CKA_ID is `id`; failures become `temporarily_unavailable`. */
export function tokenSigner(options: TokenSignerOptions): Signer {
  const { token, handles, id, alg, publicJwk, logger } = options;
  const { pkcs11 } = token;
  const mechanism = signMechanism(alg);
  const signatureLength =
    alg === 'ES256' ? 64 : Buffer.from(String(publicJwk.n), 'base64url').length;
  const inline = alg === 'ES256' && token.software;

  const signNow =
    (input: Buffer) =>
    (session: Buffer, generation: number): Uint8Array => {
      pkcs11.C_SignInit(session, mechanism, handles.get(id, session, generation));
      return pkcs11.C_Sign(session, input, Buffer.alloc(signatureLength));
    };
  const signOnPool =
    (input: Buffer) =>
    (session: Buffer, generation: number): Promise<Uint8Array> => {
      pkcs11.C_SignInit(session, mechanism, handles.get(id, session, generation));
      return pkcs11.C_SignAsync(session, input, Buffer.alloc(signatureLength));
    };
  const failed = (error: unknown): never => {
    logger.error(
      { kid: publicJwk.kid, alg, hsmToken: token.description, err: errorSummary(error) },
      'HSM signing failed',
    );
    throw temporarilyUnavailable('signing key unavailable', {
      reason: 'signing_key_unavailable',
      detail: { kid: publicJwk.kid, code: pkcs11Code(error) },
      cause: error,
    });
  };

  return (data) => {
    // ECDSA: the token signs the digest (SoftHSM2 2.6 has no CKM_ECDSA_SHA256); RSA hashes on the token.
    const input =
      alg === 'ES256'
        ? createHash('sha256').update(data).digest()
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (inline) {
      try {
        const signature = token.withFreeSession(signNow(input));
        if (signature) return Promise.resolve(signature);
      } catch {
        // Through withSession below, which re-establishes a lost session and tries once more.
      }
    }
    return token.withSession(inline ? signNow(input) : signOnPool(input)).catch(failed);
  };
}
