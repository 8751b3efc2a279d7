import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { outgoingOf, requestHeader } from './incoming.js';

/** A received `X-Request-Id` longer than this, or with characters outside `[A-Za-z0-9_=-]`, is replaced by a generated one. */
const MAX_REQUEST_ID_LENGTH = 128;

const UNSAFE = /[^\w\-=]/;

declare module 'hono' {
  interface ContextVariableMap {
    /** The request's id: the caller's `X-Request-Id` when it is safe to log, else a new UUID. */
    requestId: string;
  }
}

/** The request's id: the caller's `X-Request-Id` when it is safe to log, else a new UUID. */
export function requestIdOf(received: string | undefined): string {
  return !received || received.length > MAX_REQUEST_ID_LENGTH || UNSAFE.test(received)
    ? randomUUID()
    : received;
}

/**
 * hono's request-id middleware, reading the header from the node request when there is one: the
 * id is on every answer (errors, 404s, the body-limit refusal) and in every log line about it.
 */
export function requestIdMiddleware(): MiddlewareHandler {
  return async function requestId(c, next) {
    const id = requestIdOf(requestHeader(c, 'x-request-id'));
    c.set('requestId', id);
    // On the node response itself when there is one: whatever the answer is built with, node
    // merges it in, and hono need not prepare a Headers object for it.
    const outgoing = outgoingOf(c);
    if (outgoing) outgoing.setHeader('X-Request-Id', id);
    else c.header('X-Request-Id', id);
    await next();
  };
}
