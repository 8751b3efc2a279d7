import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { isTesseraError, payloadTooLarge, TesseraError } from '../errors.js';

/** The `result` label of a request whose body never arrived whole: the client's failure, not ours. */
export const UNREADABLE_BODY = 'unreadable_body';

/**
 * A body the client aborted, timed out on or framed wrongly. It is answered 400 when the socket is
 * still there, logged at debug (anyone can cause it at will, so it must not page anybody) and
 * counted under {@link UNREADABLE_BODY}.
 */
export class UnreadableBodyError extends TesseraError {
  constructor(cause: unknown) {
    super('invalid_request', 400, 'request body could not be read', {
      detail: { reason: cause instanceof Error ? cause.name : 'unknown' },
      logLevel: 'debug',
    });
    this.name = 'UnreadableBodyError';
  }
}

/**
 * The request body as text, at most `maxBytes` (else 413). A read that fails is
 * {@link UnreadableBodyError}. On a Node socket the message itself is watched too: a body stream
 * read after the socket broke would otherwise never settle, leaving the request pending forever.
 */
export async function readBody(c: Context, maxBytes: number): Promise<string> {
  const tooLarge = () => payloadTooLarge(`request body exceeds ${maxBytes} bytes`);
  const declared = c.req.header('content-length');
  if (declared !== undefined && c.req.header('transfer-encoding') === undefined && Number(declared) > maxBytes) throw tooLarge();
  const body = c.req.raw.body;
  if (!body) return '';
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const broken = incoming && whenBroken(incoming);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await (broken ? Promise.race([reader.read(), broken.promise]) : reader.read());
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw tooLarge();
      chunks.push(value);
    }
  } catch (error) {
    void reader.cancel().catch(() => undefined);
    if (isTesseraError(error)) throw error;
    throw new UnreadableBodyError(error);
  } finally {
    broken?.stop();
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

function whenBroken(incoming: IncomingMessage): { promise: Promise<never>; stop: () => void } {
  let check = (): void => undefined;
  const promise = new Promise<never>((_, reject) => {
    check = () => {
      if (incoming.errored) reject(incoming.errored);
      else if (incoming.destroyed && !incoming.complete) reject(new Error('connection closed before the body was complete'));
    };
  });
  // The loser of the race must not surface as an unhandled rejection.
  promise.catch(() => undefined);
  check();
  incoming.on('error', check);
  incoming.on('close', check);
  return {
    promise,
    stop() {
      incoming.off('error', check);
      incoming.off('close', check);
    },
  };
}
