import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * A client holding half-sent requests must not exhaust the broker's descriptors: connections are
 * capped per listener and header timeouts are enforced within a fraction of their value (Node
 * checks them only every 30 s by default).
 */
let t: TestApp | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await t?.close();
  t = undefined;
});

function open(url: string): Promise<Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
    sockets.push(socket);
  });
}

/** Resolves with how the server ended the connection, or `open` when it still stands after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<{ closed: boolean; data: string }> {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => resolve({ closed: false, data }), ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, data });
    });
  });
}

const HALF_REQUEST =
  'POST /v1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n';

describe('connection limits', () => {
  it('fail/a-silent-half-request-is-cut-off-soon-after-the-header-timeout', async () => {
    // Right after start: Node's own 30 s check would not have run yet.
    t = await startTestApp({ listen: { host: '127.0.0.1', port: 0, headersTimeout: 1 } });
    const socket = await open(t.url);
    socket.write(HALF_REQUEST);
    const silent = await open(t.url);
    const [half, nothing] = await Promise.all([
      closedWithin(socket, 15_000),
      closedWithin(silent, 15_000),
    ]);
    expect(half.closed).toBe(true);
    expect(half.data).toMatch(/^HTTP\/1\.1 408/);
    expect(nothing.closed).toBe(true);
  });

  it('fail/beyond-the-cap-new-connections-are-refused-while-existing-clients-are-answered', async () => {
    t = await startTestApp({ listen: { host: '127.0.0.1', port: 0, maxConnections: 4 } });
    const legit = await open(t.url);
    const answers: string[] = [];
    legit.on('data', (chunk: Buffer) => answers.push(chunk.toString()));
    const ask = () => legit.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    ask();
    await expect.poll(() => answers.join('')).toMatch(/^HTTP\/1\.1 200/);

    const held = await Promise.all([open(t.url), open(t.url), open(t.url)]);
    for (const socket of held) socket.write(HALF_REQUEST);
    const refused = await open(t.url);
    refused.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const outcome = await closedWithin(refused, 5_000);
    expect(outcome).toEqual({ closed: true, data: '' });

    answers.length = 0;
    ask();
    await expect.poll(() => answers.join('')).toMatch(/^HTTP\/1\.1 200/);
  });
});
