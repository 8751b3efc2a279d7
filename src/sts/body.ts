import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { isTesseraError, payloadTooLarge, TesseraError } from '../errors.js';
import { incomingOf, nodeHeader, requestHeader } from './incoming.js';

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
      reason: 'unreadable_body',
      detail: { error: cause instanceof Error ? cause.name : 'unknown' },
      logLevel: 'debug',
    });
    this.name = 'UnreadableBodyError';
  }
}

const tooLarge = (maxBytes: number): TesseraError =>
  payloadTooLarge(`request body exceeds ${maxBytes} bytes`, { reason: 'body_too_large' });

const declaredTooLarge = (
  header: (name: string) => string | undefined,
  maxBytes: number,
): boolean => {
  const declared = header('content-length');
  return (
    declared !== undefined &&
    header('transfer-encoding') === undefined &&
    Number(declared) > maxBytes
  );
};

/**
 * The request body as text, at most `maxBytes` (else 413). A read that fails is
 * {@link UnreadableBodyError}. Behind a node listener the body is read from the node request
 * itself; under `app.request()` from the web request's stream.
 */
export async function readBody(c: Context, maxBytes: number): Promise<string> {
  if (declaredTooLarge((name) => requestHeader(c, name), maxBytes)) throw tooLarge(maxBytes);
  const incoming = incomingOf(c);
  // readableFlowing stays null until something reads the message: then nobody else has.
  if (incoming && incoming.readableFlowing === null) return readIncoming(incoming, maxBytes);
  return readWebBody(c.req.raw.body, incoming, maxBytes);
}

/** {@link readBody} of a node request nothing has read from yet. */
export async function readNodeBody(incoming: IncomingMessage, maxBytes: number): Promise<string> {
  if (declaredTooLarge((name) => nodeHeader(incoming, name), maxBytes)) throw tooLarge(maxBytes);
  return readIncoming(incoming, maxBytes);
}

/** UTF-8 as `TextDecoder` decodes it: malformed sequences replaced, one leading BOM dropped. */
function decodeUtf8(chunks: Buffer[], size: number): string {
  const text =
    chunks.length === 1
      ? (chunks[0] as Buffer).toString('utf8')
      : Buffer.concat(chunks, size).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function readIncoming(incoming: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const fail = (error: TesseraError): void => {
      stop();
      // What is left is drained (bounded) by the listener once the refusal is answered.
      incoming.pause();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) fail(tooLarge(maxBytes));
      else chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      resolve(decodeUtf8(chunks, size));
    };
    const onError = (error: unknown): void => fail(new UnreadableBodyError(error));
    // A socket that breaks mid-body may close the message without an error event.
    const onClose = (): void => {
      if (!incoming.complete)
        fail(new UnreadableBodyError(new Error('connection closed before the body was complete')));
    };
    if (incoming.errored) return onError(incoming.errored);
    if (incoming.destroyed) return onClose();
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onClose);
  });
}

async function readWebBody(
  body: ReadableStream<Uint8Array> | null,
  incoming: IncomingMessage | undefined,
  maxBytes: number,
): Promise<string> {
  if (!body) return '';
  // On a Node socket the message itself is watched too: a body stream read after the socket
  // broke would otherwise never settle, leaving the request pending forever.
  const broken = incoming && whenBroken(incoming);
  const reader = body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await (broken
        ? Promise.race([reader.read(), broken.promise])
        : reader.read());
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
  } catch (error) {
    void reader.cancel().catch(() => undefined);
    if (isTesseraError(error)) throw error;
    throw new UnreadableBodyError(error);
  } finally {
    broken?.stop();
  }
  return decodeUtf8(chunks, size);
}

function whenBroken(incoming: IncomingMessage): { promise: Promise<never>; stop: () => void } {
  let check = (): void => undefined;
  const promise = new Promise<never>((_, reject) => {
    check = () => {
      if (incoming.errored) reject(incoming.errored);
      else if (incoming.destroyed && !incoming.complete)
        reject(new Error('connection closed before the body was complete'));
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
