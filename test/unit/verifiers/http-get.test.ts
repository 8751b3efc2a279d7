import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FetchError, httpGet } from '../../../src/verifiers/http-get.js';
import { startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';

/**
 * The one fetch behind discovery and JWKS: a real HTTPS issuer with its own CA and a plain HTTP
 * server whose answers each test picks by path. The cluster's `caFile` is the only trust anchor,
 * the size cap holds for answers that declare no length, and redirects never leave the origin.
 */
let idp: OidcIssuer;
let other: OidcIssuer;
let plain: Server;
let plainUrl: string;

const routes: Record<string, (response: ServerResponse) => void> = {
  '/ok': (response) =>
    response
      .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' })
      .end('{"ok":true}'),
  '/missing': (response) => response.writeHead(404).end(),
  '/chunked-huge': (response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    for (let i = 0; i < 40; i += 1) response.write('x'.repeat(8 * 1024));
    response.end();
  },
  '/to-https': (response) => response.writeHead(302, { location: idp.jwksUri }).end(),
  '/hang': () => undefined,
};

beforeAll(async () => {
  idp = await startOidcIssuer({ path: '/a' });
  other = await startOidcIssuer({ path: '/b' });
  plain = createServer((request, response) => {
    const route = routes[request.url ?? ''];
    if (route) route(response);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
});
afterAll(async () => {
  plain.closeAllConnections();
  await new Promise<void>((resolve) => plain.close(() => resolve()));
  await Promise.all([idp.close(), other.close()]);
});

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    expect(error).toBeInstanceOf(FetchError);
    return (error as FetchError).failure;
  }
}

describe('httpGet', () => {
  test('ok/https-with-the-issuer-ca-returns-body-and-cache-control', async () => {
    const result = await httpGet(idp.jwksUri, { ca: idp.caPem });
    expect(JSON.parse(result.body)).toEqual({ keys: [idp.currentKey().publicJwk] });
    expect(result.cacheControl).toBe('public, max-age=3600');
  });

  test('fail/another-ca-pinned: the issuer certificate is not trusted', async () => {
    expect(await failure(httpGet(idp.jwksUri, { ca: other.caPem }))).toBe('tls');
  });

  test('fail/no-ca-given: the system store does not know the test CA', async () => {
    expect(await failure(httpGet(idp.jwksUri))).toBe('tls');
  });

  test('fail/plain-http-refused-unless-allowed', async () => {
    expect(await failure(httpGet(`${plainUrl}/ok`))).toBe('insecure-url');
    expect(await httpGet(`${plainUrl}/ok`, { allowHttp: true })).toEqual({
      body: '{"ok":true}',
      cacheControl: 'max-age=60',
    });
  });

  test('fail/non-200-is-an-http-error', async () => {
    expect(await failure(httpGet(`${plainUrl}/missing`, { allowHttp: true }))).toBe('http-error');
  });

  test('fail/chunked-answer-over-the-cap-without-content-length', async () => {
    expect(await failure(httpGet(`${plainUrl}/chunked-huge`, { allowHttp: true }))).toBe(
      'too-large',
    );
  });

  test('fail/redirect-from-http-to-https-leaves-the-origin', async () => {
    expect(await failure(httpGet(`${plainUrl}/to-https`, { allowHttp: true, ca: idp.caPem }))).toBe(
      'redirect',
    );
  });

  test('fail/no-answer-before-the-deadline-is-a-timeout', async () => {
    expect(await failure(httpGet(`${plainUrl}/hang`, { allowHttp: true, timeoutMs: 200 }))).toBe(
      'timeout',
    );
  });

  test('fail/nothing-listening-is-unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await failure(httpGet(`https://127.0.0.1:${port}/jwks`))).toBe('unreachable');
  });
});
