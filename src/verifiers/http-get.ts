import type { Agent, fetch as undiciFetch } from 'undici';
import type { KeyFetchFailure } from './types.js';

/** Limits on every discovery and JWKS fetch: a slow or huge answer must not stall the broker. */
export const FETCH_TIMEOUT_MS = 5_000;
const FETCH_MAX_BYTES = 256 * 1024;
const MAX_REDIRECTS = 3;

export interface HttpGetOptions {
  /** PEM of the CA(s) to trust instead of the system store (the cluster's `caFile`): the only CAs trusted. */
  ca?: string;
  allowHttp?: boolean;
  /** Total time for the whole exchange, redirects and body included. */
  timeoutMs?: number;
  maxBytes?: number;
}

export interface HttpGetResult {
  body: string;
  cacheControl?: string;
}

/**
 * Any failure of a fetch. The message is log material (it may name files, URLs or document
 * content); `failure` is the coarse, stable code that readiness detail may show.
 */
export class FetchError extends Error {
  readonly failure: KeyFetchFailure;

  constructor(message: string, failure: KeyFetchFailure) {
    super(message);
    this.name = 'FetchError';
    this.failure = failure;
  }
}

/**
 * GET a small JSON document through undici: https only (http when allowed), one deadline for
 * the whole exchange, a size cap enforced while reading, and the cluster's `caFile` as the only
 * trusted CAs when set.
 *
 * Redirect policy: followed only within the origin of the first URL (same scheme, host and port,
 * so an https fetch never drops to http), at most 3 hops. An issuer may move its JWKS path,
 * but a redirect must not carry the fetch to a host the configured issuer does not control.
 *
 * Each call has its own connection pool, closed when the call ends: fetches happen at most
 * every few minutes per cluster, and nothing is left open between them.
 */
export async function httpGet(url: string, options: HttpGetOptions = {}): Promise<HttpGetResult> {
  // Loaded on the first fetch: commands that never fetch (dev-token, policy lint) skip its start-up cost.
  const undici = await import('undici');
  const dispatcher = new undici.Agent({ connect: options.ca ? { ca: options.ca } : {} });
  const signal = AbortSignal.timeout(options.timeoutMs ?? FETCH_TIMEOUT_MS);
  try {
    let current = new URL(url);
    const origin = current.origin;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
      if (current.protocol !== 'https:' && !(options.allowHttp && current.protocol === 'http:')) {
        throw new FetchError(`refusing ${current.protocol} URL`, 'insecure-url');
      }
      const answer = await getOnce(
        undici.fetch,
        current,
        dispatcher,
        signal,
        options.maxBytes ?? FETCH_MAX_BYTES,
      );
      if (!('redirect' in answer)) return answer;
      const next = new URL(answer.redirect, current);
      if (next.origin !== origin)
        throw new FetchError(`redirect to another origin refused: ${next.origin}`, 'redirect');
      current = next;
    }
    throw new FetchError('too many redirects', 'redirect');
  } catch (error) {
    throw asFetchError(error);
  } finally {
    await dispatcher.destroy().catch(() => undefined);
  }
}

type Answer = HttpGetResult | { redirect: string };

async function getOnce(
  fetch: typeof undiciFetch,
  url: URL,
  dispatcher: Agent,
  signal: AbortSignal,
  maxBytes: number,
): Promise<Answer> {
  const response = await fetch(url, {
    dispatcher,
    signal,
    redirect: 'manual',
    headers: { accept: 'application/json' },
  });
  const location = response.headers.get('location');
  if (response.status >= 300 && response.status < 400 && location) {
    await response.body?.cancel();
    return { redirect: location };
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new FetchError(`HTTP ${response.status}`, 'http-error');
  }
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new FetchError(`response of ${declared} bytes exceeds ${maxBytes}`, 'too-large');
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  // A chunked answer declares no length: count while reading and stop at the cap.
  for await (const chunk of response.body ?? []) {
    if (!(chunk instanceof Uint8Array))
      throw new FetchError('response body is not bytes', 'unknown');
    size += chunk.length;
    if (size > maxBytes) throw new FetchError(`response exceeds ${maxBytes} bytes`, 'too-large');
    chunks.push(chunk);
  }
  const cacheControl = response.headers.get('cache-control');
  return {
    body: Buffer.concat(chunks).toString('utf8'),
    ...(cacheControl ? { cacheControl } : {}),
  };
}

function asFetchError(error: unknown): FetchError {
  if (error instanceof FetchError) return error;
  return new FetchError(messageChain(error), networkFailure(error));
}

/** undici reports "fetch failed" with the socket or TLS error as its cause: the log wants the whole chain, codes included. */
function messageChain(error: unknown): string {
  const parts: string[] = [];
  for (
    let current = error, depth = 0;
    current !== undefined && current !== null && depth < 4;
    depth += 1
  ) {
    const { message, code, cause } = current as {
      message?: unknown;
      code?: unknown;
      cause?: unknown;
    };
    const text = typeof message === 'string' ? message : thrownValueText(current);
    parts.push(typeof code === 'string' ? `${text} (${code})` : text);
    current = cause === current ? undefined : cause;
  }
  return parts.join(': ');
}

/** Something thrown that is not an Error: primitives as they are, anything else unnamed. */
function thrownValueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return value.toString();
  return 'unknown error';
}

/** OpenSSL's certificate verification codes as Node reports them, and TLS/SSL handshake errors. */
const TLS_ERROR_CODE =
  /CERT|SSL|TLS|OSSL|EPROTO|^UNABLE_TO_|^HOSTNAME_MISMATCH$|^INVALID_CA$|^INVALID_PURPOSE$|^PATH_LENGTH_EXCEEDED$/;

/** Node's and undici's socket errors: a certificate or TLS problem, a timeout, or unreachable. */
function networkFailure(error: unknown): KeyFetchFailure {
  const { name, code, cause } = (error ?? {}) as {
    name?: unknown;
    code?: unknown;
    cause?: unknown;
  };
  if (name === 'TimeoutError' || code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
    return 'timeout';
  if (typeof code === 'string' && TLS_ERROR_CODE.test(code)) return 'tls';
  if (cause !== undefined && cause !== error) return networkFailure(cause);
  return 'unreachable';
}
