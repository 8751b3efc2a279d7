import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, ExchangeError, NetworkError, runAgent } from 'tessera-sts/sdk';
import { freePort, startTestApp, type TestApp } from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

let t: TestApp;
/** With the shipped policies: role `demo` has an x509 profile. */
let repo: TestApp;
let dir: string;
let closedUrl: string;
/** Accepts connections and never answers. */
let silent: Server;
let silentUrl: string;
const sockets = new Set<Socket>();

beforeAll(async () => {
  [t, repo] = await Promise.all([
    startTestApp({ policies: writePolicies(ENDPOINT_ROLES) }),
    startTestApp(),
  ]);
  dir = mkdtempSync(join(tmpdir(), 'tessera-sdk-outage-'));
  closedUrl = `http://127.0.0.1:${await freePort()}`;
  silent = createServer((socket) => sockets.add(socket));
  await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
  const address = silent.address();
  silentUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  silent?.close();
  await t?.close();
  await repo?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The real fetch, sent to a closed port while `down` is set: a real ECONNREFUSED. */
function switchableFetch() {
  const state = { down: false, calls: 0 };
  const wrapped: typeof fetch = (input, init) => {
    state.calls++;
    const url = input instanceof Request ? input.url : input.toString();
    return fetch(state.down ? url.replace(t.url, closedUrl) : input, init);
  };
  return { state, fetch: wrapped };
}

async function tokenFile(
  name: string,
  namespace = 'orders',
  serviceAccount = 'order-service',
  app = t,
): Promise<string> {
  const file = join(dir, name);
  writeFileSync(file, await app.devToken(namespace, serviceAccount));
  return file;
}

describe('sdk when the broker is down', () => {
  it('getToken returns the still-valid token past its refresh point, retries in the background, and fails typed once it expired', async () => {
    let clock = Date.now();
    const broker = switchableFetch();
    const refreshErrors: unknown[] = [];
    const client = createClient({
      endpoint: t.url,
      tokenFile: await tokenFile('token-outage'),
      resource: 'orders-reader',
      fetch: broker.fetch,
      now: () => clock,
      onRefreshError: (error) => refreshErrors.push(error),
    });
    const first = await client.getToken();

    broker.state.down = true;
    clock += 0.81 * 900 * 1000;
    expect(await client.getToken()).toBe(first);
    expect(refreshErrors).toHaveLength(1);
    expect(refreshErrors[0]).toBeInstanceOf(NetworkError);
    expect(refreshErrors[0]).toMatchObject({ endpoint: `${t.url}/v1/token`, timedOut: false });
    // Within the retry delay the valid token comes back at once, without a call.
    const calls = broker.state.calls;
    expect(await client.getToken()).toBe(first);
    expect(broker.state.calls).toBe(calls);

    clock += 0.2 * 900 * 1000;
    const error = await client.getToken().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as Error).message).toMatch(
      new RegExp(`^cannot reach ${t.url}/v1/token: .*ECONNREFUSED`),
    );

    broker.state.down = false;
    const next = await client.getToken();
    expect(next).not.toBe(first);
    expect(decodeJwt(next).sub).toBe('system:serviceaccount:orders:order-service');
  });

  it('a broker that does not answer is a NetworkError naming the endpoint and the timeout', async () => {
    const client = createClient({
      endpoint: silentUrl,
      tokenFile: await tokenFile('token-silent'),
      resource: 'orders-reader',
      timeoutMs: 300,
    });
    const error = await client.getToken().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({
      timedOut: true,
      endpoint: `${silentUrl}/v1/token`,
      message: `no answer from ${silentUrl}/v1/token within 300 ms`,
    });
  });

  it('a refusal carries the OAuth code, the description and the endpoint', async () => {
    const client = createClient({
      endpoint: t.url,
      tokenFile: await tokenFile('token-refused', 'payments'),
      resource: 'orders-reader',
    });
    const error = await client.getToken().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExchangeError);
    expect(error).toMatchObject({
      status: 403,
      code: 'access_denied',
      endpoint: `${t.url}/v1/token`,
    });
    expect((error as ExchangeError).description).not.toBe('');
  });
});

describe('agent --once (init container)', () => {
  it('retries a broker that is not there yet until it answers', async () => {
    const broker = switchableFetch();
    broker.state.down = true;
    const errors: unknown[] = [];
    const out = join(dir, 'once-retry');
    const agent = runAgent({
      endpoint: t.url,
      tokenFile: await tokenFile('token-once'),
      resource: 'orders-reader',
      out,
      type: 'jwt',
      once: true,
      deadlineMs: 30_000,
      fetch: broker.fetch,
      onError: (error) => {
        errors.push(error);
        if (errors.length === 2) broker.state.down = false;
      },
    });
    await agent;
    expect(errors).toHaveLength(2);
    expect(errors.every((error) => error instanceof NetworkError)).toBe(true);
    expect(decodeJwt(readFileSync(join(out, 'token'), 'utf8')).sub).toBe(
      'system:serviceaccount:orders:order-service',
    );
  });

  it('gives up at the deadline with the last network error', async () => {
    const broker = switchableFetch();
    broker.state.down = true;
    const failure = runAgent({
      endpoint: t.url,
      tokenFile: await tokenFile('token-deadline'),
      resource: 'orders-reader',
      out: join(dir, 'once-deadline'),
      type: 'jwt',
      once: true,
      deadlineMs: 2500,
      fetch: broker.fetch,
    });
    await expect(failure).rejects.toBeInstanceOf(NetworkError);
    // 1 s then 2 s of backoff: the third attempt would end past the deadline.
    expect(broker.state.calls).toBe(2);
  });

  it('fails at once on a refusal: retrying cannot change a policy decision', async () => {
    const broker = switchableFetch();
    const failure = runAgent({
      endpoint: t.url,
      tokenFile: await tokenFile('token-once-denied', 'payments'),
      resource: 'orders-reader',
      out: join(dir, 'once-denied'),
      type: 'jwt',
      once: true,
      fetch: broker.fetch,
    });
    await expect(failure).rejects.toMatchObject({ code: 'access_denied' });
    expect(broker.state.calls).toBe(1);
  });
});

describe('agent --group / --mode (an app container running as another user)', () => {
  // Root may give files to any group; anyone else to a group of their own.
  const gid = process.getuid?.() === 0 ? 4242 : (process.getgid?.() ?? 0);
  const mode = (path: string) => statSync(path).mode & 0o777;

  it.each([
    ['ok/group-default-mode', undefined, 0o640, 0o640, 0o750],
    ['ok/group-world-readable-cert-not-key', 0o644, 0o644, 0o640, 0o755],
  ] as const)('%s', async (name, requested, fileMode, keyMode, dirMode) => {
    const out = join(dir, name.replace(/\W+/g, '-'));
    await runAgent({
      endpoint: repo.url,
      tokenFile: await tokenFile(`token-${name.replace(/\W+/g, '-')}`, 'default', 'demo', repo),
      resource: 'demo',
      out,
      type: 'x509',
      once: true,
      group: gid,
      mode: requested,
    });
    for (const file of ['svid.pem', 'bundle.pem', 'token']) {
      expect({ file, mode: mode(join(out, file)), gid: statSync(join(out, file)).gid }).toEqual({
        file,
        mode: fileMode,
        gid,
      });
    }
    expect(mode(join(out, 'svid-key.pem'))).toBe(keyMode);
    expect(statSync(join(out, 'svid-key.pem')).gid).toBe(gid);
    // The files sit in a versioned directory behind ..data: that directory must let the group in.
    expect(mode(join(out, '..data'))).toBe(dirMode);
    expect(statSync(join(out, '..data')).gid).toBe(gid);
    expect(statSync(out).gid).toBe(gid);
  });

  it('a JWT agent with --group writes a group-readable token', async () => {
    const out = join(dir, 'jwt-group');
    await runAgent({
      endpoint: t.url,
      tokenFile: await tokenFile('token-jwt-group'),
      resource: 'orders-reader',
      out,
      type: 'jwt',
      once: true,
      group: gid,
    });
    expect(mode(join(out, 'token'))).toBe(0o640);
    expect(statSync(join(out, 'token')).gid).toBe(gid);
  });
});
