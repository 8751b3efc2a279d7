import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from 'hono';

/**
 * What the caller-dependent parts read of a request (its address, its client certificate): its
 * headers, and the node request when a node listener serves it (absent under `app.request()`).
 */
export interface RequestView {
  incoming: IncomingMessage | undefined;
  /** A request header as the fetch `Headers` class gives it; `name` is lower-case. */
  header(name: string): string | undefined;
}

/**
 * The node request behind a hono context, when the app is served by a node listener (absent under
 * `app.request()`). Reading headers and the body from it directly spares every token request the
 * web `Headers`, `Request` and `ReadableStream` objects @hono/node-server builds on first use.
 */
export function incomingOf(c: Context): IncomingMessage | undefined {
  const env = c.env as { incoming?: IncomingMessage } | undefined;
  return env?.incoming;
}

/** The node response of the same request, when there is a node listener. */
export function outgoingOf(c: Context): ServerResponse | undefined {
  const env = c.env as { outgoing?: ServerResponse } | undefined;
  return env?.outgoing;
}

/**
 * A request header as the fetch `Headers` class gives it (repeated fields joined with `, `), read
 * from the node request's raw header list when there is one. `name` is lower-case.
 */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = incomingOf(c);
  return incoming ? nodeHeader(incoming, name) : c.req.header(name);
}

/** {@link requestHeader} of a node request: its raw header list, without the `headers` object node builds on first use. */
export function nodeHeader(incoming: IncomingMessage, name: string): string | undefined {
  const raw = incoming.rawHeaders;
  let value: string | undefined;
  for (let index = 0; index < raw.length; index += 2) {
    const key = raw[index] as string;
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    const field = raw[index + 1] as string;
    value = value === undefined ? field : `${value}, ${field}`;
  }
  return value;
}

/** The request view of a hono context. */
export const requestViewOf = (c: Context): RequestView => ({
  incoming: incomingOf(c),
  header: (name) => requestHeader(c, name),
});

/** The peer address of the socket a request came in on; absent under `app.request()`. */
export const peerAddress = (request: RequestView): string | undefined =>
  request.incoming?.socket.remoteAddress;
