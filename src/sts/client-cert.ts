import type { TLSSocket } from 'node:tls';
import type { Context } from 'hono';

/**
 * The subject of the client certificate the TLS layer verified (mTLS), as `CN=…, O=…`; absent on
 * plain HTTP, without a certificate, or when it did not verify. Reads the socket of the Node.js
 * adapter (`c.env.incoming`), so it works for any TLS listener without further wiring.
 */
export function clientCertSubject(c: Context): string | undefined {
  const socket = (c.env as { incoming?: { socket?: Partial<TLSSocket> } } | undefined)?.incoming?.socket;
  if (socket?.authorized !== true || typeof socket.getPeerX509Certificate !== 'function') return undefined;
  return socket.getPeerX509Certificate()?.subject.split('\n').join(', ');
}
