import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isTesseraError } from '../errors.js';
import type { Logger } from '../observability/index.js';

/** Security headers for every JSON answer of the token endpoint (RFC 6749 §5.1). */
export const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' } as const;

/**
 * The one place an error becomes an HTTP response. What the client sees is the error's
 * code and client-safe description; anything unexpected is a bare 500 `server_error`.
 * The detail and cause go to the log, never to the body.
 */
export function errorResponse(error: unknown, c: Context, logger: Logger): Response {
  if (isTesseraError(error)) {
    const level = error.logLevel ?? (error.status >= 500 ? 'warn' : 'info');
    const err = {
      code: error.code,
      reason: error.reason,
      status: error.status,
      message: error.description,
    };
    logger[level](
      { err, detail: error.detail, cause: causeMessage(error.cause), path: c.req.path },
      'request refused',
    );
    return c.json(
      { error: error.code, error_description: error.description },
      error.status as ContentfulStatusCode,
      { ...NO_STORE, ...error.headers },
    );
  }
  logger.error({ err: error, path: c.req.path }, 'unexpected error');
  return c.json({ error: 'server_error', error_description: 'internal error' }, 500, {
    ...NO_STORE,
  });
}

function causeMessage(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`;
  return typeof cause === 'string' || typeof cause === 'number' || typeof cause === 'boolean'
    ? String(cause)
    : typeof cause;
}
