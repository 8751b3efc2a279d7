import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { stringify as toYaml } from 'yaml';
import { createTestCa, issueLeaf } from './kube-apiserver-pki.js';
import { freePort } from './net.js';

export { requireBinary } from './redis.js';

/**
 * A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution registry) on a
 * free loopback port, TLS with a throwaway CA, storage in a temporary directory. Images and cosign
 * signatures are pushed through the registry HTTP API, in the layout of sigstore/cosign
 * `specs/SIGNATURE_SPEC.md`.
 */
export interface TestRegistry {
  /** `127.0.0.1:<port>`: the registry part of image references. */
  host: string;
  /**
   * With `tokenAuth`: a second registry process serving the same storage that demands Docker
   * token auth (a Bearer challenge naming a token endpoint the test runs).
   */
  tokenHost?: string;
  /** Tokens the token endpoint handed out. */
  tokensIssued(): number;
  caFile: string;
  caPem: string;
  /** Push a tiny image; resolves to its manifest digest. */
  pushImage(repository: string, tag: string, content?: string): Promise<string>;
  /** Push a cosign signature layer for `repository@digest` signed by `key` (appended to those already there). */
  pushSignature(
    repository: string,
    digest: string,
    key: KeyObject,
    options?: SignatureOptions,
  ): Promise<void>;
  /** Put raw bytes as the manifest tagged `tag` (for malformed signature manifests). */
  putManifest(repository: string, tag: string, body: string, mediaType?: string): Promise<number>;
  stop(): Promise<void>;
}

export interface SignatureOptions {
  /** What the payload names (default: the signed image itself). */
  payloadDigest?: string;
  payloadReference?: string;
  type?: string;
  /** Sign these bytes instead of the payload (a signature that does not match it). */
  signBytes?: Buffer;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';

const sha256 = (bytes: Buffer | string): string =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** A cosign key pair: ECDSA P-256, as `cosign generate-key-pair` makes. */
export function cosignKeyPair(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export async function startRegistry(options: { tokenAuth?: boolean } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-registry-'));
  const ca = await createTestCa('tessera-test-registry-ca');
  const leaf = await issueLeaf(ca, 'server', 'CN=registry');
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
  writeFileSync(join(dir, 'tls.key'), leaf.keyPem, { mode: 0o600 });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'config.yml'),
    toYaml({
      version: 0.1,
      log: { level: 'error', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true } },
      http: {
        addr: host,
        secret: 'test-only',
        tls: { certificate: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
      },
    }),
  );
  const children: ChildProcess[] = [];
  const launch = async (config: string, ready: () => Promise<boolean>) => {
    const child = spawn('docker-registry', ['serve', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr?.on(
      'data',
      (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)),
    );
    await waitReady(child, ready, () => stderr);
  };
  const base = `https://${host}/v2/`;
  const call = (path: string, init: RequestInit = {}) =>
    tlsFetch(new URL(path, base), init, ca.certPem);
  await launch(join(dir, 'config.yml'), () =>
    call('')
      .then((response) => response.status === 200)
      .catch(() => false),
  );
  let tokenHost: string | undefined;
  let tokensIssued = 0;
  let tokenServer: HttpsServer | undefined;
  if (options.tokenAuth) {
    const signer = await createTestCa('tessera-test-token-signer');
    writeFileSync(join(dir, 'token-signer.pem'), signer.certPem);
    const x5c = signer.certPem.replace(/-----[^-]+-----|\s/g, '');
    tokenServer = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://token');
      const [, repository] = /^repository:([^:]+):/.exec(url.searchParams.get('scope') ?? '') ?? [];
      tokensIssued += 1;
      void new SignJWT({
        access: repository ? [{ type: 'repository', name: repository, actions: ['pull'] }] : [],
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [x5c] })
        .setIssuer('tessera-test-token-issuer')
        .setAudience(url.searchParams.get('service') ?? '')
        .setSubject('tessera')
        .setIssuedAt()
        .setNotBefore(Math.floor(Date.now() / 1000) - 60)
        .setExpirationTime('5m')
        .setJti(String(tokensIssued))
        .sign(signer.keys.privateKey)
        .then((token) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ token, expires_in: 300 }));
        });
    });
    await new Promise<void>((resolve) => tokenServer?.listen(0, '127.0.0.1', resolve));
    const tokenPort = (tokenServer.address() as { port: number }).port;
    const authPort = await freePort();
    tokenHost = `127.0.0.1:${authPort}`;
    writeFileSync(
      join(dir, 'config-token.yml'),
      toYaml({
        version: 0.1,
        log: { level: 'error', accesslog: { disabled: true } },
        storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true } },
        http: {
          addr: tokenHost,
          secret: 'test-only',
          tls: { certificate: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
        },
        auth: {
          token: {
            realm: `https://127.0.0.1:${tokenPort}/token`,
            service: 'tessera-test-registry',
            issuer: 'tessera-test-token-issuer',
            rootcertbundle: join(dir, 'token-signer.pem'),
          },
        },
      }),
    );
    const authBase = `https://${tokenHost}/v2/`;
    await launch(join(dir, 'config-token.yml'), () =>
      tlsFetch(new URL('', authBase), {}, ca.certPem)
        .then((response) => response.status === 401)
        .catch(() => false),
    );
  }

  async function pushBlob(repository: string, bytes: Buffer): Promise<string> {
    const digest = sha256(bytes);
    const start = await call(`${repository}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
    const location = new URL(start.headers.get('location') as string, base);
    location.searchParams.set('digest', digest);
    const put = await call(location.toString(), {
      method: 'PUT',
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status} ${await put.text()}`);
    return digest;
  }

  async function putManifest(
    repository: string,
    tag: string,
    body: string,
    mediaType = OCI_MANIFEST,
  ): Promise<number> {
    const response = await call(`${repository}/manifests/${tag}`, {
      method: 'PUT',
      body,
      headers: { 'content-type': mediaType },
    });
    await response.arrayBuffer();
    return response.status;
  }

  async function getManifest(
    repository: string,
    tag: string,
  ): Promise<{ layers: unknown[] } | undefined> {
    const response = await call(`${repository}/manifests/${tag}`, {
      headers: { accept: OCI_MANIFEST },
    });
    if (response.status === 404) return undefined;
    return (await response.json()) as { layers: unknown[] };
  }

  return {
    host,
    ...(tokenHost ? { tokenHost } : {}),
    tokensIssued: () => tokensIssued,
    caFile,
    caPem: ca.certPem,
    async pushImage(repository, tag, content = `${repository}:${tag}`) {
      const layer = Buffer.from(content);
      const layerDigest = await pushBlob(repository, layer);
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          rootfs: { type: 'layers', diff_ids: [layerDigest] },
          config: {},
        }),
      );
      const configDigest = await pushBlob(repository, config);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          size: config.length,
          digest: configDigest,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            size: layer.length,
            digest: layerDigest,
          },
        ],
      });
      const status = await putManifest(repository, tag, manifest);
      if (status !== 201) throw new Error(`image manifest: HTTP ${status}`);
      return sha256(manifest);
    },
    async pushSignature(repository, digest, key, options = {}) {
      const payload = Buffer.from(
        JSON.stringify({
          critical: {
            identity: { 'docker-reference': options.payloadReference ?? `${host}/${repository}` },
            image: { 'docker-manifest-digest': options.payloadDigest ?? digest },
            type: options.type ?? 'cosign container image signature',
          },
          optional: { creator: 'tessera tests' },
        }),
      );
      const signature = sign('sha256', options.signBytes ?? payload, {
        key,
        dsaEncoding: 'der',
      }).toString('base64');
      const payloadDigest = await pushBlob(repository, payload);
      const tag = `${digest.replace(':', '-')}.sig`;
      const existing = ((await getManifest(repository, tag))?.layers ?? []) as Array<{
        digest: string;
      }>;
      const layers = [
        ...existing,
        {
          mediaType: SIMPLE_SIGNING,
          size: payload.length,
          digest: payloadDigest,
          annotations: { 'dev.cosignproject.cosign/signature': signature },
        },
      ];
      const config = Buffer.from(
        JSON.stringify({
          architecture: '',
          os: '',
          rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
          config: {},
        }),
      );
      const configDigest = await pushBlob(repository, config);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          size: config.length,
          digest: configDigest,
        },
        layers,
      });
      const status = await putManifest(repository, tag, manifest);
      if (status !== 201) throw new Error(`signature manifest: HTTP ${status}`);
    },
    putManifest,
    async stop() {
      for (const child of children) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        });
      }
      tokenServer?.closeAllConnections();
      await new Promise((resolve) =>
        tokenServer ? tokenServer.close(resolve) : resolve(undefined),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitReady(
  child: ChildProcess,
  ready: () => Promise<boolean>,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`docker-registry exited (${child.exitCode}): ${stderr()}`);
    if (await ready()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`docker-registry did not answer within 15 s: ${stderr()}`);
}

/** fetch over TLS trusting only `ca`, through node:https (global fetch cannot take a CA). */
async function tlsFetch(url: URL, init: RequestInit, ca: string): Promise<Response> {
  const body =
    init.body === undefined || init.body === null
      ? undefined
      : Buffer.from(init.body as string | Buffer);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: init.method ?? 'GET',
        headers: {
          ...(init.headers as Record<string, string>),
          ...(body ? { 'content-length': String(body.length) } : {}),
        },
        ca,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers))
            if (typeof value === 'string') headers.set(name, value);
          const status = res.statusCode ?? 0;
          resolve(
            new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), {
              status,
              headers,
            }),
          );
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
