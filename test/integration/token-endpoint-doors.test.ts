import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

/**
 * A plain `POST /v1/token` is answered from node's request and response; the same request with a
 * query string goes through the hono app. Both doors must answer alike: status, headers, body
 * and audit event.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
});
afterAll(async () => {
  await t?.close();
});

const DIRECT = '/v1/token';
const THROUGH_HONO = '/v1/token?door=hono';

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${t.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  const text = await response.text();
  const json = JSON.parse(text) as Record<string, unknown>;
  return {
    status: response.status,
    headers: Object.fromEntries(
      ['content-type', 'cache-control', 'pragma', 'x-request-id', 'retry-after', 'allow'].map(
        (name) => [name, response.headers.get(name)],
      ),
    ),
    contentLength: response.headers.get('content-length'),
    length: Buffer.byteLength(text),
    json,
  };
}

/** The audit event of a request id, without what differs per exchange. */
function auditOf(requestId: string): Record<string, unknown> {
  const line = t.logs.lines
    .map((text) => JSON.parse(text) as Record<string, unknown>)
    .find((event) => event.event === 'token_exchange' && event.requestId === requestId);
  if (!line) throw new Error(`no audit event for ${requestId}`);
  const { time, requestId: _id, jti, exp, credentialSha256, durationMs, ...rest } = line;
  expect([time, durationMs].every((value) => value !== undefined)).toBe(true);
  return { ...rest, issued: [jti, exp, credentialSha256].every((value) => value !== undefined) };
}

async function bothDoors(body: string, id: string) {
  const direct = await post(DIRECT, body, { 'x-request-id': `${id}-direct` });
  const hono = await post(THROUGH_HONO, body, { 'x-request-id': `${id}-hono` });
  expect(direct.headers['x-request-id']).toBe(`${id}-direct`);
  expect(hono.headers['x-request-id']).toBe(`${id}-hono`);
  for (const answer of [direct, hono]) expect(answer.contentLength).toBe(String(answer.length));
  return { direct, hono };
}

describe('POST /v1/token through either door', () => {
  it('ok/an-exchange-is-answered-and-audited-alike', async () => {
    const form = exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token: await t.devToken('orders', 'order-service'),
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
    });
    const { direct, hono } = await bothDoors(form, 'ok');
    expect(direct.status).toBe(200);
    expect({ ...direct.headers, 'x-request-id': '' }).toEqual({
      ...hono.headers,
      'x-request-id': '',
    });
    expect(direct.headers['cache-control']).toBe('no-store');
    expect(Object.keys(direct.json).sort()).toEqual(Object.keys(hono.json).sort());
    expect(auditOf('ok-direct')).toEqual(auditOf('ok-hono'));
    expect(auditOf('ok-direct')).toMatchObject({ outcome: 'allow', status: 200, issued: true });
  });

  it.each([
    ['fail/unsupported-grant-type', exchangeForm({ grant_type: 'password' }), 400],
    [
      'fail/malformed-subject-token',
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: 'x.y.z',
        subject_token_type: JWT_TYPE,
      }),
      400,
    ],
    [
      'fail/body-over-64KiB',
      exchangeForm({ grant_type: TOKEN_EXCHANGE, subject_token: 'x'.repeat(70 * 1024) }),
      413,
    ],
  ])('%s is refused and audited alike', async (name, body, status) => {
    const id = name.replace('/', '-');
    const { direct, hono } = await bothDoors(body, id);
    expect(direct.status).toBe(status);
    expect({ ...direct, headers: { ...direct.headers, 'x-request-id': '' } }).toEqual({
      ...hono,
      headers: { ...hono.headers, 'x-request-id': '' },
    });
    expect(auditOf(`${id}-direct`)).toEqual(auditOf(`${id}-hono`));
    expect(auditOf(`${id}-direct`)).toMatchObject({ outcome: 'error', status });
  });

  it('ok/an-unsafe-request-id-is-replaced-by-either-door', async () => {
    const direct = await post(DIRECT, 'grant_type=password', { 'x-request-id': 'a b' });
    const hono = await post(THROUGH_HONO, 'grant_type=password', { 'x-request-id': 'a b' });
    for (const answer of [direct, hono])
      expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('fail/a-request-without-host-is-left-to-hono-which-answers-400', async () => {
    const { port } = new URL(t.url);
    const socket = connect(Number(port), '127.0.0.1');
    // An exchange that would succeed: the 400 is the missing Host, not the body.
    const body = exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token: await t.devToken('orders', 'order-service'),
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
    });
    socket.end(
      `POST /v1/token HTTP/1.0\r\ncontent-type: application/x-www-form-urlencoded\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.[01] 400 /);
  });
});
