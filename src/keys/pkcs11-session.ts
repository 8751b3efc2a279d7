import pkcs11js from 'pkcs11js';
import type { Logger } from '../observability/index.js';
import { KeyStoreError } from './errors.js';

/**
 * One logged-in PKCS#11 token: the module initialised once with OS locking, one login, and a
 * pool of sessions (one per libuv pool thread, so every concurrent `C_SignAsync` has its own).
 * A session, login or token lost behind our back is recovered once per operation: a new
 * generation of sessions is opened and logged in, and callers re-find their object handles
 * (SoftHSM2 hands out new handles after a re-login; measured).
 *
 * When that is not enough (the token itself went away: a library only rescans its tokens when
 * initialised), the connection is marked down and recovers in the background: the library is
 * finalised and initialised again, the token found, a session opened and logged in, with backoff
 * from `retryMinMs` to `retryMaxMs`. Meanwhile operations fail at once and `up()` is false.
 */
export interface TokenOptions {
  module: string;
  tokenLabel?: string;
  slot?: number;
  pin: string;
  poolSize: number;
  logger: Logger;
  /** Backoff of the background recovery after the token is lost (defaults 250 ms → 5 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface TokenConnection {
  readonly pkcs11: pkcs11js.PKCS11;
  /** `token "label"` or `slot N`, for messages. */
  readonly description: string;
  /** Runs `operation` on a logged-in session; on a lost session or token, reconnects and retries once. */
  withSession<T>(operation: (session: Buffer, generation: number) => Promise<T> | T): Promise<T>;
  /** False from a failure a new session could not fix until the background recovery succeeds. */
  up(): boolean;
  /** Reports a failure an operation saw (e.g. the key gone with the token): starts recovery. */
  markDown(code: string): void;
  close(): void;
}

/** Return values after which the session, the login or the whole library must be re-established. */
const RECOVERABLE = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_DEVICE_ERROR',
]);

/**
 * After these, or a RECOVERABLE code that a new session did not cure, the token is taken for gone:
 * SoftHSM2 answers CKR_GENERAL_ERROR once its token directory has disappeared (measured).
 */
const TOKEN_LOST = new Set([...RECOVERABLE, 'CKR_GENERAL_ERROR', 'CKR_TOKEN_NOT_RECOGNIZED', 'CKR_SLOT_ID_INVALID', 'CKR_DEVICE_MEMORY']);

/** The native library is process-wide: finalise it only when the last user in this process closes. */
const moduleUsers = new Map<string, number>();

export function pkcs11Code(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : '';
  return /^CKR_[A-Z_]+/.exec(message)?.[0];
}

export async function connectToken(options: TokenOptions): Promise<TokenConnection> {
  const { module, tokenLabel, slot: slotId, pin, poolSize, logger } = options;
  const retryMinMs = options.retryMinMs ?? 250;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  const description = tokenLabel !== undefined ? `token "${tokenLabel}"` : `slot ${String(slotId)}`;
  const fail = (what: string, error: unknown): KeyStoreError => {
    const code = pkcs11Code(error) ?? 'PKCS11_ERROR';
    return new KeyStoreError(`PKCS#11 ${what} for ${description} failed: ${code} (module ${module})`, code);
  };

  const pkcs11 = new pkcs11js.PKCS11();
  try {
    pkcs11.load(module);
  } catch (error) {
    throw new KeyStoreError(`cannot load PKCS#11 module ${module}: ${error instanceof Error ? error.message : String(error)}`, 'MODULE_LOAD');
  }
  const initialize = (): void => {
    try {
      // Without OS locking, concurrent C_SignAsync calls crash SoftHSM2.
      pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (error) {
      if (pkcs11Code(error) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw error;
    }
  };
  try {
    initialize();
  } catch (error) {
    throw fail('C_Initialize', error);
  }
  moduleUsers.set(module, (moduleUsers.get(module) ?? 0) + 1);

  const findSlot = (): Buffer => {
    for (const candidate of pkcs11.C_GetSlotList(true)) {
      if (tokenLabel !== undefined ? pkcs11.C_GetTokenInfo(candidate).label.trim() === tokenLabel : slotNumber(candidate) === slotId) return candidate;
    }
    throw new KeyStoreError(`PKCS#11 ${description} not found: CKR_TOKEN_NOT_PRESENT (module ${module})`, 'CKR_TOKEN_NOT_PRESENT');
  };
  const openSession = (slot: Buffer): Buffer => pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  const login = (session: Buffer): void => {
    try {
      pkcs11.C_Login(session, pkcs11js.CKU_USER, pin);
    } catch (error) {
      if (pkcs11Code(error) !== 'CKR_USER_ALREADY_LOGGED_IN') throw error;
    }
  };

  let slot: Buffer;
  let first: Buffer;
  try {
    slot = findSlot();
    first = openSession(slot);
  } catch (error) {
    releaseModule();
    throw error instanceof KeyStoreError ? error : fail('C_OpenSession', error);
  }
  try {
    login(first);
  } catch (error) {
    pkcs11.C_CloseSession(first);
    releaseModule();
    throw fail('login', error);
  }

  let generation = 0;
  let free: Buffer[] = [first];
  let size = 1;
  const waiters: Array<{ resolve: (lease: Lease) => void; reject: (error: unknown) => void }> = [];
  let recovering: Promise<void> | undefined;
  let closed = false;

  interface Lease {
    session: Buffer;
    generation: number;
  }

  const dispatch = (): void => {
    while (waiters.length > 0 && (free.length > 0 || size < poolSize)) {
      const waiter = waiters.shift() as (typeof waiters)[number];
      const reused = free.pop();
      if (reused) {
        waiter.resolve({ session: reused, generation });
        continue;
      }
      size += 1;
      try {
        waiter.resolve({ session: openSession(slot), generation });
      } catch (error) {
        size -= 1;
        waiter.reject(error);
      }
    }
  };
  const acquire = (): Promise<Lease> => {
    if (closed) return Promise.reject(new KeyStoreError(`PKCS#11 ${description} is closed`, 'CLOSED'));
    return new Promise((resolve, reject) => {
      waiters.push({ resolve, reject });
      dispatch();
    });
  };
  const release = (lease: Lease, healthy: boolean): void => {
    // A session of an older generation is never closed: after a re-initialisation its handle
    // number may already name one of the new sessions.
    if (lease.generation === generation) {
      if (healthy && !closed) free.push(lease.session);
      else {
        size -= 1;
        closeQuietly(lease.session);
      }
    }
    dispatch();
  };
  const closeQuietly = (session: Buffer): void => {
    try {
      pkcs11.C_CloseSession(session);
    } catch {
      // Invalid already.
    }
  };

  const recover = (failedGeneration: number, code: string): Promise<void> => {
    if (generation > failedGeneration) return Promise.resolve();
    recovering ??= (async () => {
      logger.warn({ token: description, code }, 'PKCS#11 session lost; reconnecting');
      if (code === 'CKR_CRYPTOKI_NOT_INITIALIZED') initialize();
      else free.forEach(closeQuietly);
      free = [];
      slot = findSlot();
      const session = openSession(slot);
      login(session);
      generation += 1;
      free = [session];
      size = 1;
      dispatch();
    })().finally(() => {
      recovering = undefined;
    });
    return recovering;
  };

  let down: { since: number; code: string } | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  /** Start over as a fresh process would: finalise, initialise, find the token, log in. */
  const reinitialise = (): void => {
    try {
      pkcs11.C_Finalize();
    } catch {
      // Not initialised, or finalised by another connection: either way initialise next.
    }
    initialize();
    slot = findSlot();
    const session = openSession(slot);
    try {
      login(session);
    } catch (error) {
      closeQuietly(session);
      throw error;
    }
    generation += 1;
    free = [session];
    size = 1;
  };
  const scheduleRetry = (delayMs: number): void => {
    if (closed) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (closed || !down) return;
      try {
        reinitialise();
        logger.info({ token: description, downForMs: Date.now() - down.since }, 'PKCS#11 token back: signing restored');
        down = undefined;
        dispatch();
      } catch (error) {
        logger.debug({ token: description, code: pkcs11Code(error) ?? 'PKCS11_ERROR' }, 'PKCS#11 token still unavailable');
        scheduleRetry(Math.min(delayMs * 2, retryMaxMs));
      }
    }, delayMs);
    retryTimer.unref();
  };
  const markDown = (code: string): void => {
    if (down || closed) return;
    down = { since: Date.now(), code };
    logger.error({ token: description, code }, 'PKCS#11 token unavailable: signing fails until it is back; retrying in the background');
    scheduleRetry(retryMinMs);
  };
  const unavailable = (): KeyStoreError =>
    new KeyStoreError(`PKCS#11 ${description} unavailable (${down?.code ?? 'unknown'}); recovering in the background`, down?.code ?? 'CKR_TOKEN_NOT_PRESENT');

  return {
    pkcs11,
    description,
    async withSession(operation) {
      for (let attempt = 0; ; attempt += 1) {
        if (down) throw unavailable();
        let lease: Lease | undefined;
        let healthy = true;
        try {
          lease = await acquire();
          return await operation(lease.session, lease.generation);
        } catch (error) {
          healthy = false;
          const code = pkcs11Code(error);
          if (closed || !code) throw error;
          if (attempt === 0 && RECOVERABLE.has(code)) {
            try {
              await recover(lease?.generation ?? generation, code);
              continue;
            } catch (recoveryError) {
              markDown(pkcs11Code(recoveryError) ?? code);
              throw error;
            }
          }
          if (TOKEN_LOST.has(code)) markDown(code);
          throw error;
        } finally {
          if (lease) release(lease, healthy);
        }
      }
    },
    up: () => !down && !closed,
    markDown,
    close() {
      if (closed) return;
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      for (const waiter of waiters.splice(0)) waiter.reject(new KeyStoreError(`PKCS#11 ${description} is closed`, 'CLOSED'));
      free.splice(0).forEach(closeQuietly);
      // The last user finalises the library, which also logs out; earlier users leave the
      // shared login to the others still holding sessions.
      releaseModule();
    },
  };

  function releaseModule(): void {
    const users = (moduleUsers.get(module) ?? 1) - 1;
    if (users > 0) {
      moduleUsers.set(module, users);
      return;
    }
    moduleUsers.delete(module);
    try {
      pkcs11.C_Finalize();
    } catch {
      // Finalised by another handle already.
    }
  }
}

/** PKCS#11 slot handles are CK_ULONGs in host byte order. */
function slotNumber(handle: Buffer): number {
  return handle.length >= 8 ? Number(handle.readBigUInt64LE(0)) : handle.readUInt32LE(0);
}
