import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isTesseraError } from '../errors.js';
import type { Logger } from '../observability/index.js';

/** Security headers for every JSON answer of the token endpoint (RFC 6749 §5.1). */
export const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' } as const;

/** An answer as plain data: what either the hono app or the node fast path of the token endpoint writes. */
export interface Answer {
  status: number;
  /** Without `Content-Type` (always `application/json`), `Content-Length` and `X-Request-Id`. */
  headers: Record<string, string>;
  /** JSON text. */
  body: string;
}

/**
 * The one place an error becomes an HTTP answer. What the client sees is the error's
 * code and client-safe description; anything unexpected is a bare 500 `server_error`.
 * The detail and cause go to the log, never to the body.
 */
export function errorAnswer(error: unknown, logger: Logger, path: string): Answer {
  if (isTesseraError(error)) {
    const level = error.logLevel ?? (error.status >= 500 ? 'warn' : 'info');
    const err = {
      code: error.code,
      reason: error.reason,
      status: error.status,
      message: error.description,
    };
    logger[level](
      { err, detail: error.detail, cause: causeMessage(error.cause), path },
      'request refused',
    );
    return {
      status: error.status,
      headers: { ...NO_STORE, ...error.headers },
      body: JSON.stringify({ error: error.code, error_description: error.description }),
    };
  }
  logger.error({ err: error, path }, 'unexpected error');
  return {
    status: 500,
    headers: { ...NO_STORE },
    body: JSON.stringify({ error: 'server_error', error_description: 'internal error' }),
  };
}

/** {@link errorAnswer} as hono's response. */
export function errorResponse(error: unknown, c: Context, logger: Logger): Response {
  const answer = errorAnswer(error, logger, c.req.path);
  return c.body(answer.body, answer.status as ContentfulStatusCode, {
    'Content-Type': 'application/json',
    ...answer.headers,
  });
}

function causeMessage(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`;
  return typeof cause === 'string' || typeof cause === 'number' || typeof cause === 'boolean'
    ? String(cause)
    : typeof cause;
}
