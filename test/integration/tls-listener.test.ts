import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { createLocalJWKSet, jwtVerify } from 'jose';
import * as client from 'openid-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type TesseraApp } from '../../src/app.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import {
  captureLogs,
  freePort,
  JWT_TYPE,
  TOKEN_EXCHANGE,
  type LogCapture,
} from '../support/app.js';
import { httpsFetch } from '../support/https.js';
import { writePolicies } from '../support/policies.js';
import {
  createPkiCa,
  issuePkiLeaf,
  serialOf,
  type PkiCa,
  type PkiLeaf,
} from '../support/tls-pki.js';

const ROLES = {
  'demo.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: demo }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition:
        StringEquals: { "kubernetes.io/namespace": default }
issue:
  audiences: [demo-api]
  algorithm: ES256
`,
  'svid-only.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: svid-only }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition:
        StringEquals:
          "kubernetes.io/namespace": orders
          "request:client_cert/uri": spiffe://example.org/ns/orders/sa/order-service
issue:
  audiences: [orders-api]
  algorithm: ES256
`,
  'subject.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: by-subject }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition:
        StringLike:
          "request:client_cert/subject": "CN=gateway*"
issue:
  audiences: [gateway-api]
  algorithm: ES256
`,
};

interface Pki {
  dir: string;
  serverCa: PkiCa;
  clientCa: PkiCa;
  otherCa: PkiCa;
  server: PkiLeaf;
  svid: PkiLeaf;
  gateway: PkiLeaf;
  foreign: PkiLeaf;
}

let pki: Pki;
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-tls-'));
  const serverCa = createPkiCa(dir, 'server-ca');
  const clientCa = createPkiCa(dir, 'client-ca');
  const otherCa = createPkiCa(dir, 'other-ca');
  pki = {
    dir,
    serverCa,
    clientCa,
    otherCa,
    server: issuePkiLeaf(serverCa, { name: 'server', usage: 'server' }),
    svid: issuePkiLeaf(clientCa, {
      name: 'svid',
      usage: 'client',
      subject: '/O=SPIRE',
      sans: ['URI:spiffe://example.org/ns/orders/sa/order-service'],
    }),
    gateway: issuePkiLeaf(clientCa, {
      name: 'gateway',
      usage: 'client',
      subject: '/CN=gateway-1/O=Example',
    }),
    // Same subject and SPIFFE ID as the good one, from a CA the broker does not trust.
    foreign: issuePkiLeaf(otherCa, {
      name: 'svid',
      usage: 'client',
      subject: '/O=SPIRE',
      sans: ['URI:spiffe://example.org/ns/orders/sa/order-service'],
    }),
  };
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

interface TlsBroker {
  app: TesseraApp;
  url: string;
  logs: LogCapture;
  certFile: string;
  keyFile: string;
  close(): Promise<void>;
}

/** A broker on https with the server pair copied to files it watches; no `issuer` in the config. */
async function startTlsBroker(
  options: { clientCa?: boolean; headersTimeout?: number } = {},
): Promise<TlsBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-tls-broker-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  copyFileSync(pki.server.certFile, certFile);
  copyFileSync(pki.server.keyFile, keyFile);
  const port = await freePort();
  const config = parseConfig({
    listen: {
      host: '127.0.0.1',
      port,
      ...(options.headersTimeout && { headersTimeout: options.headersTimeout }),
      tls: { certFile, keyFile, ...(options.clientCa && { clientCaFile: pki.clientCa.certFile }) },
    },
    audience: 'tessera',
    devCluster: { keyDir: join(dir, 'dev-cluster') },
    policies: writePolicies(ROLES),
    keys: { provider: 'local', dir: join(dir, 'keys') },
    x509: { dir: join(dir, 'ca') },
    logging: { level: 'debug' },
  });
  const { capture, logger } = captureLogs();
  const app = await createApp(config, {
    logger,
    watchPolicies: false,
    processMetrics: false,
    tlsReloadIntervalMs: 100,
  });
  const { url } = await app.listen();
  return {
    app,
    url,
    logs: capture,
    certFile,
    keyFile,
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const devToken = (broker: TlsBroker, namespace: string, serviceAccount: string): Promise<string> =>
  (broker.app.devCluster as NonNullable<TesseraApp['devCluster']>).signToken({
    namespace,
    serviceAccount,
    audience: 'tessera',
  });

const exchangeBody = (subjectToken: string, resource: string) =>
  new URLSearchParams({
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: JWT_TYPE,
    resource,
  });

/** The serial number of the certificate a fresh handshake gets. */
function servedSerial(url: string, extra: ConnectionOptions = {}): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: '127.0.0.1',
        port: Number(port),
        ca: pki.serverCa.certPem,
        servername: 'localhost',
        ...extra,
      },
      () => {
        const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
        socket.end();
        resolve(serial);
      },
    );
    socket.on('error', reject);
  });
}

const waitFor = async (
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe('TLS on the listener', () => {
  let broker: TlsBroker;
  beforeAll(async () => {
    broker = await startTlsBroker();
  });
  afterAll(async () => broker?.close());

  it('ok/openid-client-discovers-and-exchanges-over-https, the issuer following the https listener', async () => {
    expect(broker.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(broker.app.config.issuer).toBe(broker.url);
    const customFetch = httpsFetch({ ca: pki.serverCa.certPem });
    const config = await client.discovery(
      new URL(broker.url),
      'orders-pod',
      undefined,
      client.None(),
      { [client.customFetch]: customFetch },
    );
    expect(config.serverMetadata().issuer).toBe(broker.url);
    config[client.customFetch] = customFetch;
    const response = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: await devToken(broker, 'default', 'demo'),
      subject_token_type: JWT_TYPE,
      resource: 'demo',
    });
    const jwks = (await (
      await customFetch(config.serverMetadata().jwks_uri as string)
    ).json()) as Parameters<typeof createLocalJWKSet>[0];
    const { payload } = await jwtVerify(response.access_token, createLocalJWKSet(jwks), {
      issuer: broker.url,
    });
    expect(payload.sub).toBe('system:serviceaccount:default:demo');
  });

  it('ok/http-keep-alive-on-tls', async () => {
    const agent = new Agent({ keepAlive: true });
    const response = await httpsFetch({ ca: pki.serverCa.certPem, agent })(`${broker.url}/healthz`);
    agent.destroy();
    expect(response.headers.get('connection')).toBe('keep-alive');
    expect(response.headers.get('keep-alive')).toMatch(/timeout=\d+/);
  });

  it('fail/tls-1.1-and-below-are-refused, 1.2 and 1.3 accepted', async () => {
    // SECLEVEL=0 lets this client offer TLS 1.1 at all: the refusal is the server's.
    await expect(
      servedSerial(broker.url, {
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
      }),
    ).rejects.toThrow();
    expect(await servedSerial(broker.url, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).toBe(
      serialOf(pki.server.certPem),
    );
    expect(await servedSerial(broker.url, { minVersion: 'TLSv1.3' })).toBe(
      serialOf(pki.server.certPem),
    );
  });

  it('fail/client-initiated-renegotiation-is-refused', async () => {
    const { port } = new URL(broker.url);
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect(
        {
          host: '127.0.0.1',
          port: Number(port),
          ca: pki.serverCa.certPem,
          servername: 'localhost',
          maxVersion: 'TLSv1.2',
        },
        () => resolve(s),
      );
      s.on('error', reject);
    });
    // Without the server's refusal the renegotiation completes within milliseconds.
    const outcome = await new Promise<string>((resolve) => {
      socket.on('error', (error: Error) => resolve(`error: ${error.message}`));
      socket.on('close', () => resolve('closed'));
      const started = socket.renegotiate({}, (error) =>
        resolve(error ? `error: ${error.message}` : 'renegotiated'),
      );
      if (started === false) resolve('not started');
      setTimeout(() => resolve('no renegotiation'), 3000);
    });
    socket.destroy();
    expect(outcome).not.toBe('renegotiated');
  });

  it('ok/rotated-files-are-served-without-a-failed-request', async () => {
    const next = issuePkiLeaf(pki.serverCa, { name: 'server-next', usage: 'server' });
    const fetchTls = httpsFetch({ ca: pki.serverCa.certPem });
    const failures: string[] = [];
    let stop = false;
    const load = (async () => {
      while (!stop) {
        try {
          const response = await fetchTls(`${broker.url}/.well-known/openid-configuration`);
          if (response.status !== 200) failures.push(`status ${response.status}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    })();
    // Key first, then certificate, as a non-atomic writer would: between the two the pair mismatches.
    copyFileSync(next.keyFile, broker.keyFile);
    await new Promise((resolve) => setTimeout(resolve, 150));
    copyFileSync(next.certFile, broker.certFile);
    await waitFor(
      'the new certificate',
      async () => (await servedSerial(broker.url)) === serialOf(next.certPem),
    );
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(broker.logs.text()).toContain('TLS certificate reloaded');
  });

  it('fail/an-expired-or-mismatched-pair-is-refused-and-the-old-one-kept', async () => {
    const before = await servedSerial(broker.url);
    const expired = issuePkiLeaf(pki.serverCa, {
      name: 'server-expired',
      usage: 'server',
      notBefore: new Date('2020-01-01'),
      notAfter: new Date('2020-02-01'),
    });
    copyFileSync(expired.keyFile, broker.keyFile);
    copyFileSync(expired.certFile, broker.certFile);
    await waitFor('the refusal', () => broker.logs.text().includes('expired at 2020-02-01'));
    expect(await servedSerial(broker.url)).toBe(before);

    const other = issuePkiLeaf(pki.serverCa, { name: 'server-other', usage: 'server' });
    const another = issuePkiLeaf(pki.serverCa, { name: 'server-another', usage: 'server' });
    copyFileSync(other.certFile, broker.certFile);
    copyFileSync(another.keyFile, broker.keyFile);
    await waitFor('the refusal', () =>
      broker.logs.text().includes('does not belong to the certificate'),
    );
    expect(await servedSerial(broker.url)).toBe(before);
    const refusals = broker.logs.lines.filter((line) => line.includes('new TLS files refused'));
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    expect(refusals.join('\n')).not.toContain('PRIVATE KEY');
  });

  it('fail/start-up-refuses-a-mismatched-pair, naming the files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-tls-bad-'));
    const config = parseConfig({
      listen: {
        host: '127.0.0.1',
        port: 0,
        tls: { certFile: pki.server.certFile, keyFile: pki.gateway.keyFile },
      },
      audience: 'tessera',
      devCluster: { keyDir: join(dir, 'dev') },
      keys: { provider: 'local', dir: join(dir, 'keys') },
      x509: { dir: join(dir, 'ca') },
    });
    const app = await createApp(config, {
      logger: captureLogs().logger,
      watchPolicies: false,
      processMetrics: false,
    });
    try {
      await expect(app.listen()).rejects.toThrow(ConfigError);
      await expect(app.listen()).rejects.toThrow(/gateway\.key does not belong to the certificate/);
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TLS handshake timeout', () => {
  it('fail/a-client-that-never-starts-the-handshake-is-disconnected', async () => {
    const broker = await startTlsBroker({ headersTimeout: 1 });
    try {
      const { port } = new URL(broker.url);
      const socket = createConnection(Number(port), '127.0.0.1');
      socket.on('error', () => undefined);
      // Node's default handshake timeout is 120 s; this one follows headersTimeout (1 s).
      const closed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 15_000);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      socket.destroy();
      expect(closed).toBe(true);
    } finally {
      await broker.close();
    }
  });
});

describe('mutual TLS for the token endpoint', () => {
  let broker: TlsBroker;
  beforeAll(async () => {
    broker = await startTlsBroker({ clientCa: true });
  });
  afterAll(async () => broker?.close());

  // supertest against the real TLS listener: each request brings its own CA and client certificate.
  const https = () => request(broker.url);
  /** POST /v1/token presenting `leaf` (or no certificate); a dev token for `namespace`/`serviceAccount` asks for `role`. */
  const exchangeAs = async (
    leaf: PkiLeaf | undefined,
    namespace: string,
    serviceAccount: string,
    role: string,
  ) => {
    const body = exchangeBody(await devToken(broker, namespace, serviceAccount), role).toString();
    const test = https().post('/v1/token').ca(pki.serverCa.certPem).type('form');
    return (leaf ? test.cert(leaf.certPem).key(leaf.keyPem) : test).send(body);
  };

  it('fail/no-client-certificate-is-401-invalid_client, discovery, JWKS and trust bundle stay public', async () => {
    const refused = await exchangeAs(undefined, 'orders', 'order-service', 'svid-only');
    expect([refused.status, refused.body]).toEqual([
      401,
      {
        error: 'invalid_client',
        error_description: 'a client certificate issued by a trusted CA is required',
      },
    ]);
    for (const path of [
      '/.well-known/openid-configuration',
      '/.well-known/jwks.json',
      '/v1/trust-bundle',
    ]) {
      await https().get(path).ca(pki.serverCa.certPem).expect(200);
    }
  });

  it('fail/a-certificate-from-another-ca-is-401', async () => {
    const refused = await exchangeAs(pki.foreign, 'orders', 'order-service', 'svid-only');
    expect([refused.status, refused.body]).toEqual([
      401,
      {
        error: 'invalid_client',
        error_description: 'a client certificate issued by a trusted CA is required',
      },
    ]);
  });

  it('ok/the-svid-uri-is-a-condition-key-and-goes-into-the-audit-event', async () => {
    expect((await exchangeAs(pki.svid, 'orders', 'order-service', 'svid-only')).status).toBe(200);
    const audit = broker.logs.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.event === 'token_exchange' && entry.role === 'svid-only');
    expect(audit.at(-1)).toMatchObject({
      clientCertSubject: 'O=SPIRE',
      clientCertUris: ['spiffe://example.org/ns/orders/sa/order-service'],
    });

    // A valid certificate of the same CA with another identity does not satisfy the condition.
    expect((await exchangeAs(pki.gateway, 'orders', 'order-service', 'svid-only')).status).toBe(
      403,
    );
  });

  it('ok/the-subject-dn-is-a-condition-key', async () => {
    expect((await exchangeAs(pki.gateway, 'edge', 'gateway', 'by-subject')).status).toBe(200);
    expect((await exchangeAs(pki.svid, 'edge', 'gateway', 'by-subject')).status).toBe(403);
  });
});
