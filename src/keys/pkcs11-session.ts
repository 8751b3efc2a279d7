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
  /**
   * A software token (no `CKF_HW_SLOT`, e.g. SoftHSM2): the library signs in this process, as
   * node:crypto does, so a short signature is cheaper in-line than through the libuv pool.
   */
  readonly software: boolean;
  /** Runs `operation` on a logged-in session; on a lost session or token, reconnects and retries once. */
  withSession<T>(operation: (session: Buffer, generation: number) => Promise<T> | T): Promise<T>;
  /**
   * Runs a synchronous `operation` at once on a free session (no promise, no pool hop), or
   * returns `undefined` when none is free or the token is down. A failure rethrows and drops the
   * session; the caller then goes through {@link withSession}, which recovers.
   */
  withFreeSession<T>(operation: (session: Buffer, generation: number) => T): T | undefined;
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
const TOKEN_LOST = new Set([
  ...RECOVERABLE,
  'CKR_GENERAL_ERROR',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SLOT_ID_INVALID',
  'CKR_DEVICE_MEMORY',
]);

/** PKCS#11 §5.2 CK_SLOT_INFO flag (not in pkcs11js's constants): a hardware slot, not a soft token. */
const CKF_HW_SLOT = 0x4;

/** The native library is process-wide: finalise it only when the last user in this process closes. */
const moduleUsers = new Map<string, number>();

export function pkcs11Code(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : '';
  return /^CKR_[A-Z_]+/.exec(message)?.[0];
}

interface Lease {
  session: Buffer;
  generation: number;
}

interface Waiter {
  resolve: (lease: Lease) => void;
  reject: (error: unknown) => void;
}

/** Everything one connection knows; the functions below each do one job on it. */
interface TokenState {
  readonly options: TokenOptions;
  readonly pkcs11: pkcs11js.PKCS11;
  readonly description: string;
  readonly software: boolean;
  slot: Buffer;
  /** Bumped each time the sessions are re-established; handles of older generations are stale. */
  generation: number;
  free: Buffer[];
  /** Sessions open in this generation, leased or free. */
  size: number;
  readonly waiters: Waiter[];
  recovering: Promise<void> | undefined;
  down: { since: number; code: string } | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  closed: boolean;
}

/**
 * Loads the module, initialises it, finds the token and logs in; the connection then keeps a
 * pool of sessions and recovers from lost sessions and tokens (see {@link TokenOptions}).
 */
export function connectToken(options: TokenOptions): Promise<TokenConnection> {
  // The executor's throw is the rejection: the library calls are synchronous.
  return new Promise((resolve) => resolve(openToken(options)));
}

function openToken(options: TokenOptions): TokenConnection {
  const pkcs11 = loadModule(options.module);
  const description =
    options.tokenLabel !== undefined
      ? `token "${options.tokenLabel}"`
      : `slot ${String(options.slot)}`;
  try {
    initialize(pkcs11);
  } catch (error) {
    throw failure(options, description, 'C_Initialize', error);
  }
  moduleUsers.set(options.module, (moduleUsers.get(options.module) ?? 0) + 1);
  let first: { slot: Buffer; session: Buffer; software: boolean };
  try {
    first = firstSession(pkcs11, options, description);
  } catch (error) {
    releaseModule(pkcs11, options.module);
    throw error;
  }
  const state: TokenState = {
    options,
    pkcs11,
    description,
    software: first.software,
    slot: first.slot,
    generation: 0,
    free: [first.session],
    size: 1,
    waiters: [],
    recovering: undefined,
    down: undefined,
    retryTimer: undefined,
    closed: false,
  };
  return {
    pkcs11,
    description,
    software: state.software,
    withSession: (operation) => withSession(state, operation),
    withFreeSession: (operation) => withFreeSession(state, operation),
    up: () => !state.down && !state.closed,
    markDown: (code) => markDown(state, code),
    close: () => closeToken(state),
  };
}

function loadModule(module: string): pkcs11js.PKCS11 {
  const pkcs11 = new pkcs11js.PKCS11();
  try {
    pkcs11.load(module);
  } catch (error) {
    throw new KeyStoreError(
      `cannot load PKCS#11 module ${module}: ${error instanceof Error ? error.message : String(error)}`,
      'MODULE_LOAD',
    );
  }
  return pkcs11;
}

function failure(
  options: TokenOptions,
  description: string,
  what: string,
  error: unknown,
): KeyStoreError {
  const code = pkcs11Code(error) ?? 'PKCS11_ERROR';
  return new KeyStoreError(
    `PKCS#11 ${what} for ${description} failed: ${code} (module ${options.module})`,
    code,
  );
}

function initialize(pkcs11: pkcs11js.PKCS11): void {
  try {
    // Without OS locking, concurrent C_SignAsync calls crash SoftHSM2.
    pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if (pkcs11Code(error) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw error;
  }
}

/** The start-up session: its errors name the step that failed, for the operator. */
function firstSession(
  pkcs11: pkcs11js.PKCS11,
  options: TokenOptions,
  description: string,
): { slot: Buffer; session: Buffer; software: boolean } {
  let slot: Buffer;
  let session: Buffer;
  try {
    slot = findSlot(pkcs11, options, description);
    session = openSession(pkcs11, slot);
  } catch (error) {
    throw error instanceof KeyStoreError
      ? error
      : failure(options, description, 'C_OpenSession', error);
  }
  try {
    login(pkcs11, session, options.pin);
  } catch (error) {
    closeQuietly(pkcs11, session);
    throw failure(options, description, 'login', error);
  }
  const software = (pkcs11.C_GetSlotInfo(slot).flags & CKF_HW_SLOT) === 0;
  return { slot, session, software };
}

function findSlot(pkcs11: pkcs11js.PKCS11, options: TokenOptions, description: string): Buffer {
  const { tokenLabel, slot: slotId } = options;
  for (const candidate of pkcs11.C_GetSlotList(true)) {
    if (
      tokenLabel !== undefined
        ? pkcs11.C_GetTokenInfo(candidate).label.trim() === tokenLabel
        : slotNumber(candidate) === slotId
    )
      return candidate;
  }
  throw new KeyStoreError(
    `PKCS#11 ${description} not found: CKR_TOKEN_NOT_PRESENT (module ${options.module})`,
    'CKR_TOKEN_NOT_PRESENT',
  );
}

const openSession = (pkcs11: pkcs11js.PKCS11, slot: Buffer): Buffer =>
  pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);

function login(pkcs11: pkcs11js.PKCS11, session: Buffer, pin: string): void {
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (error) {
    if (pkcs11Code(error) !== 'CKR_USER_ALREADY_LOGGED_IN') throw error;
  }
}

function closeQuietly(pkcs11: pkcs11js.PKCS11, session: Buffer): void {
  try {
    pkcs11.C_CloseSession(session);
  } catch {
    // Invalid already.
  }
}

/** A new generation: one fresh logged-in session in place of every earlier one. */
function startGeneration(state: TokenState, session: Buffer): void {
  state.generation += 1;
  state.free = [session];
  state.size = 1;
}

// ---- the session pool ----

function dispatch(state: TokenState): void {
  while (state.free.length > 0 || state.size < state.options.poolSize) {
    const waiter = state.waiters.shift();
    if (!waiter) return;
    const reused = state.free.pop();
    if (reused) {
      waiter.resolve({ session: reused, generation: state.generation });
      continue;
    }
    state.size += 1;
    try {
      waiter.resolve({
        session: openSession(state.pkcs11, state.slot),
        generation: state.generation,
      });
    } catch (error) {
      state.size -= 1;
      waiter.reject(error);
    }
  }
}

function acquire(state: TokenState): Promise<Lease> {
  if (state.closed) return Promise.reject(closedError(state));
  return new Promise((resolve, reject) => {
    state.waiters.push({ resolve, reject });
    dispatch(state);
  });
}

function release(state: TokenState, lease: Lease, healthy: boolean): void {
  // A session of an older generation is never closed: after a re-initialisation its handle
  // number may already name one of the new sessions.
  if (lease.generation === state.generation) {
    if (healthy && !state.closed) state.free.push(lease.session);
    else {
      state.size -= 1;
      closeQuietly(state.pkcs11, lease.session);
    }
  }
  dispatch(state);
}

const closedError = (state: TokenState): KeyStoreError =>
  new KeyStoreError(`PKCS#11 ${state.description} is closed`, 'CLOSED');

async function withSession<T>(
  state: TokenState,
  operation: (session: Buffer, generation: number) => Promise<T> | T,
): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    if (state.down) throw unavailable(state);
    let lease: Lease | undefined;
    let healthy = true;
    try {
      lease = await acquire(state);
      return await operation(lease.session, lease.generation);
    } catch (error) {
      healthy = false;
      if (!(await recovered(state, error, attempt, lease))) throw error;
    } finally {
      if (lease) release(state, lease, healthy);
    }
  }
}

function withFreeSession<T>(
  state: TokenState,
  operation: (session: Buffer, generation: number) => T,
): T | undefined {
  if (state.down || state.closed || state.waiters.length > 0) return undefined;
  const session = state.free.pop();
  if (!session) return undefined;
  const lease = { session, generation: state.generation };
  let healthy = false;
  try {
    const result = operation(session, lease.generation);
    healthy = true;
    return result;
  } finally {
    release(state, lease, healthy);
  }
}

// ---- recovery ----

/** After a failed operation: true when the sessions were re-established and it may run again. */
async function recovered(
  state: TokenState,
  error: unknown,
  attempt: number,
  lease: Lease | undefined,
): Promise<boolean> {
  const code = pkcs11Code(error);
  if (state.closed || !code) return false;
  if (attempt === 0 && RECOVERABLE.has(code)) {
    try {
      await recover(state, lease?.generation ?? state.generation, code);
      return true;
    } catch (recoveryError) {
      markDown(state, pkcs11Code(recoveryError) ?? code);
      return false;
    }
  }
  if (TOKEN_LOST.has(code)) markDown(state, code);
  return false;
}

/** A new session and login once per failed generation, however many operations saw the failure. */
function recover(state: TokenState, failedGeneration: number, code: string): Promise<void> {
  if (state.generation > failedGeneration) return Promise.resolve();
  state.recovering ??= Promise.resolve()
    .then(() => {
      const { pkcs11, options } = state;
      options.logger.warn(
        { hsmToken: state.description, code },
        'PKCS#11 session lost; reconnecting',
      );
      if (code === 'CKR_CRYPTOKI_NOT_INITIALIZED') initialize(pkcs11);
      else state.free.forEach((session) => closeQuietly(pkcs11, session));
      state.free = [];
      state.slot = findSlot(pkcs11, options, state.description);
      const session = openSession(pkcs11, state.slot);
      login(pkcs11, session, options.pin);
      startGeneration(state, session);
      dispatch(state);
    })
    .finally(() => {
      state.recovering = undefined;
    });
  return state.recovering;
}

/** Start over as a fresh process would: finalise, initialise, find the token, log in. */
function reinitialise(state: TokenState): void {
  const { pkcs11, options } = state;
  try {
    pkcs11.C_Finalize();
  } catch {
    // Not initialised, or finalised by another connection: either way initialise next.
  }
  initialize(pkcs11);
  state.slot = findSlot(pkcs11, options, state.description);
  const session = openSession(pkcs11, state.slot);
  try {
    login(pkcs11, session, options.pin);
  } catch (error) {
    closeQuietly(pkcs11, session);
    throw error;
  }
  startGeneration(state, session);
}

function markDown(state: TokenState, code: string): void {
  if (state.down || state.closed) return;
  state.down = { since: Date.now(), code };
  state.options.logger.error(
    { hsmToken: state.description, code },
    'PKCS#11 token unavailable: signing fails until it is back; retrying in the background',
  );
  scheduleRetry(state, state.options.retryMinMs ?? 250);
}

function scheduleRetry(state: TokenState, delayMs: number): void {
  if (state.closed) return;
  state.retryTimer = setTimeout(() => {
    state.retryTimer = undefined;
    retry(state, delayMs);
  }, delayMs);
  state.retryTimer.unref();
}

function retry(state: TokenState, delayMs: number): void {
  const { down, options } = state;
  if (state.closed || !down) return;
  try {
    reinitialise(state);
    options.logger.info(
      { hsmToken: state.description, downForMs: Date.now() - down.since },
      'PKCS#11 token back: signing restored',
    );
    state.down = undefined;
    dispatch(state);
  } catch (error) {
    options.logger.debug(
      { hsmToken: state.description, code: pkcs11Code(error) ?? 'PKCS11_ERROR' },
      'PKCS#11 token still unavailable',
    );
    scheduleRetry(state, Math.min(delayMs * 2, options.retryMaxMs ?? 5000));
  }
}

function unavailable(state: TokenState): KeyStoreError {
  const code = state.down?.code;
  return new KeyStoreError(
    `PKCS#11 ${state.description} unavailable (${code ?? 'unknown'}); recovering in the background`,
    code ?? 'CKR_TOKEN_NOT_PRESENT',
  );
}

function closeToken(state: TokenState): void {
  if (state.closed) return;
  state.closed = true;
  if (state.retryTimer) clearTimeout(state.retryTimer);
  for (const waiter of state.waiters.splice(0)) waiter.reject(closedError(state));
  state.free.splice(0).forEach((session) => closeQuietly(state.pkcs11, session));
  // The last user finalises the library, which also logs out; earlier users leave the
  // shared login to the others still holding sessions.
  releaseModule(state.pkcs11, state.options.module);
}

function releaseModule(pkcs11: pkcs11js.PKCS11, module: string): void {
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

/** PKCS#11 slot handles are CK_ULONGs in host byte order. */
function slotNumber(handle: Buffer): number {
  return handle.length >= 8 ? Number(handle.readBigUInt64LE(0)) : handle.readUInt32LE(0);
}
