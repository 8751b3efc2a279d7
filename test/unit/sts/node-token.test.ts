import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/observability/index.js';
import type { ListenerScope } from '../../../src/sts/index.js';
import { directTokenHandler } from '../../../src/sts/node-token.js';
import type { TokenCall } from '../../../src/sts/token-endpoint.js';

/**
 * Which requests the token endpoint's node fast path takes, and which it leaves to hono: a real
 * node server whose fallback answers 418, in front of an endpoint function that records its calls.
 */
const calls: Array<{ requestId: string; body: string; contentType: string | undefined }> = [];
const direct = directTokenHandler(async (call: TokenCall) => {
  const body = await call.readBody(64);
  calls.push({ requestId: call.requestId, body, contentType: call.header('content-type') });
  return { status: 200, headers: { 'Cache-Control': 'no-store' }, body: '{"ok":true}' };
}, silentLogger());

let scope: ListenerScope = 'all';
let server: Server;
let port = 0;

beforeAll(async () => {
  server = createServer((incoming, response) => {
    if (!direct(incoming, response, scope)) response.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function send(
  method: string,
  path: string,
  body = '',
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { 'content-type': 'text/plain', ...headers },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

describe('the token endpoint fast path', () => {
  it('ok/takes-a-plain-post-and-writes-the-endpoint-answer', async () => {
    scope = 'all';
    const before = calls.length;
    const answer = await send('POST', '/v1/token', 'a=b', { 'x-request-id': 'fast-1' });
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('{"ok":true}');
    expect(answer.headers).toMatchObject({
      'x-request-id': 'fast-1',
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': '11',
    });
    expect(calls.slice(before)).toEqual([
      { requestId: 'fast-1', body: 'a=b', contentType: 'text/plain' },
    ]);
  });

  it.each([
    ['GET', '/v1/token'],
    ['POST', '/v1/token?a=b'],
    ['POST', '/v1/token/'],
    ['POST', '/v1/%74oken'],
    ['POST', '/.well-known/jwks.json'],
  ])('ok/leaves-%s-%s-to-hono', async (method, path) => {
    scope = 'all';
    const before = calls.length;
    expect((await send(method, path, method === 'GET' ? '' : 'a=b')).status).toBe(418);
    expect(calls.length).toBe(before);
  });

  it('ok/leaves-the-token-path-to-hono-on-a-listener-that-does-not-serve-it', async () => {
    scope = 'public';
    const before = calls.length;
    expect((await send('POST', '/v1/token', 'a=b')).status).toBe(418);
    expect(calls.length).toBe(before);
    scope = 'all';
  });

  it('fail/a-body-over-the-limit-is-a-413-from-the-endpoint', async () => {
    scope = 'all';
    const answer = await send('POST', '/v1/token', 'x'.repeat(100));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toMatchObject({ error: 'invalid_request' });
  });
});
