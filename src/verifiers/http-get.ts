import http from 'node:http';
import https from 'node:https';
import type { KeyFetchFailure } from './types.js';

/** Limits on every discovery and JWKS fetch: a slow or huge answer must not stall the broker. */
export const FETCH_TIMEOUT_MS = 5_000;
export const FETCH_MAX_BYTES = 256 * 1024;
const MAX_REDIRECTS = 3;

export interface HttpGetOptions {
  /** PEM of the CA(s) to trust instead of the system store (the cluster's `caFile`). */
  ca?: string;
  allowHttp?: boolean;
  timeoutMs?: number;
  maxBytes?: number;
  /** Replaces node:https, only for tests of faults a real server cannot produce. */
  fetchImpl?: typeof fetch;
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
  constructor(
    message: string,
    readonly failure: KeyFetchFailure,
  ) {
    super(message);
    this.name = 'FetchError';
  }
}

/**
 * GET a small JSON document: https only (http when allowed), a total timeout, a size cap,
 * and redirects followed only within the same origin.
 */
export async function httpGet(url: string, options: HttpGetOptions = {}): Promise<HttpGetResult> {
  let current = new URL(url);
  const origin = current.origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
    if (current.protocol !== 'https:' && !(options.allowHttp && current.protocol === 'http:')) {
      throw new FetchError(`refusing ${current.protocol} URL`, 'insecure-url');
    }
    const answer = options.fetchImpl ? await viaFetch(current, options) : await viaNode(current, options);
    if ('redirect' in answer) {
      const next = new URL(answer.redirect, current);
      if (next.origin !== origin) throw new FetchError(`redirect to another origin refused: ${next.origin}`, 'redirect');
      current = next;
      continue;
    }
    return answer;
  }
  throw new FetchError('too many redirects', 'redirect');
}

type Answer = HttpGetResult | { redirect: string };

function viaNode(url: URL, options: HttpGetOptions): Promise<Answer> {
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? FETCH_MAX_BYTES;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<Answer>((resolve, reject) => {
    const request = client.request(
      url,
      { method: 'GET', agent: false, headers: { accept: 'application/json' }, ...(options.ca ? { ca: options.ca } : {}) },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location) {
          response.resume();
          resolve({ redirect: response.headers.location });
          return;
        }
        if (status !== 200) {
          response.resume();
          reject(new FetchError(`HTTP ${status}`, 'http-error'));
          return;
        }
        const declared = Number(response.headers['content-length'] ?? 0);
        if (declared > maxBytes) {
          request.destroy();
          reject(new FetchError(`response of ${declared} bytes exceeds ${maxBytes}`, 'too-large'));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            request.destroy(new FetchError(`response exceeds ${maxBytes} bytes`, 'too-large'));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          const cacheControl = response.headers['cache-control'];
          resolve({ body: Buffer.concat(chunks).toString('utf8'), ...(cacheControl ? { cacheControl } : {}) });
        });
        response.on('error', (error) => reject(asFetchError(error)));
      },
    );
    const timer = setTimeout(() => request.destroy(new FetchError(`timed out after ${timeoutMs} ms`, 'timeout')), timeoutMs);
    request.on('error', (error) => reject(asFetchError(error)));
    request.on('close', () => clearTimeout(timer));
    request.end();
  });
}

async function viaFetch(url: URL, options: HttpGetOptions): Promise<Answer> {
  const maxBytes = options.maxBytes ?? FETCH_MAX_BYTES;
  let response: Response;
  try {
    response = await (options.fetchImpl as typeof fetch)(url, {
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? FETCH_TIMEOUT_MS),
      headers: { accept: 'application/json' },
    });
  } catch (error) {
    throw asFetchError(error);
  }
  const location = response.headers.get('location');
  if (response.status >= 300 && response.status < 400 && location) return { redirect: location };
  if (response.status !== 200) throw new FetchError(`HTTP ${response.status}`, 'http-error');
  const reader = response.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const part = reader ? await reader.read() : { done: true as const, value: undefined };
    if (part.done) break;
    size += part.value.length;
    if (size > maxBytes) {
      await reader?.cancel();
      throw new FetchError(`response exceeds ${maxBytes} bytes`, 'too-large');
    }
    chunks.push(part.value);
  }
  const cacheControl = response.headers.get('cache-control');
  return { body: Buffer.concat(chunks).toString('utf8'), ...(cacheControl ? { cacheControl } : {}) };
}

function asFetchError(error: unknown): FetchError {
  if (error instanceof FetchError) return error;
  return new FetchError((error as Error | undefined)?.message ?? String(error), networkFailure(error));
}

/** OpenSSL's certificate verification codes as Node reports them, and TLS/SSL handshake errors. */
const TLS_ERROR_CODE = /CERT|SSL|TLS|OSSL|EPROTO|^UNABLE_TO_|^HOSTNAME_MISMATCH$|^INVALID_CA$|^INVALID_PURPOSE$|^PATH_LENGTH_EXCEEDED$/;

/** Node's and undici's socket errors: a certificate or TLS problem, a timeout, or unreachable. */
function networkFailure(error: unknown): KeyFetchFailure {
  const { name, code, cause } = (error ?? {}) as { name?: unknown; code?: unknown; cause?: unknown };
  if (name === 'TimeoutError' || code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'timeout';
  if (typeof code === 'string' && TLS_ERROR_CODE.test(code)) return 'tls';
  if (cause !== undefined && cause !== error) return networkFailure(cause);
  return 'unreachable';
}
