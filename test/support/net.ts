import { createServer } from 'node:net';

/**
 * A port free a moment ago on 127.0.0.1, for servers that must know their port before they
 * listen (redis-server; a broker whose issuer names its own URL).
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}
