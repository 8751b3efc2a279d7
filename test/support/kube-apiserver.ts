import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';
import { stringify as toYaml } from 'yaml';
import { createTestCa, issueLeaf } from './kube-apiserver-pki.js';

/**
 * A Kubernetes API server stand-in for tests: HTTPS on 127.0.0.1 with its own CA, callers
 * authenticated by bearer token or client certificate (401/403 `Status` bodies otherwise, as a
 * real kube-apiserver answers), `POST /apis/authentication.k8s.io/v1/tokenreviews` answered from
 * a table the test controls, and the service-account issuer discovery endpoints. Tests drive the
 * real `@kubernetes/client-node` against it through the kubeconfig files it writes.
 */
export interface KubeUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}
export interface ReviewSeen {
  token: string;
  audiences: string[];
  /** Who asked: the reviewer's username (token or client-certificate CN). */
  caller: string;
}
export interface KubeconfigOptions {
  /** How the broker authenticates: the reviewer token (default) or the client certificate. */
  auth?: 'token' | 'client-cert';
  /** Override the bearer token, e.g. a wrong one. */
  token?: string;
  /** `other-ca`: a kubeconfig that trusts an unrelated CA (TLS verification must fail). */
  trust?: 'own-ca' | 'other-ca';
}
export interface IssueOptions {
  namespace: string;
  serviceAccount: string;
  pod?: string;
  /** The pod's uid (default: a random one). */
  podUid?: string;
  node?: string;
  audiences: string[];
  /** Seconds since the epoch; default now. */
  iat?: number;
  ttlSeconds?: number;
}
export interface KubeApiServer {
  url: string;
  /** The service-account issuer (`iss` of issued tokens); the server URL. */
  issuer: string;
  caPem: string;
  caFile: string;
  /** Username the reviewer token and client certificate authenticate as. */
  reviewerUsername: string;
  kubeconfig(options?: KubeconfigOptions): string;
  /** Make `token` known: reviews of it authenticate as `user` (for `audiences`, default any). */
  addToken(token: string, user: KubeUser, options?: { audiences?: string[] }): void;
  /** Sign a projected service-account token (RS256, the issuer's key) and make it known. */
  issueToken(options: IssueOptions): Promise<string>;
  /** The pod was deleted: reviews of `token` now answer "invalidated". */
  revoke(token: string): void;
  restore(token: string): void;
  /** Down: every connection is reset, as when the API server is unreachable. */
  setDown(down: boolean): void;
  setDelay(ms: number): void;
  /** The reviewer lacks RBAC (`system:auth-delegator`): 403 to every review. */
  setForbidden(forbidden: boolean): void;
  /** Answer every review with this HTTP status (a `Status` body); undefined: answer normally. */
  failWith(status: number | undefined): void;
  reviews(): ReviewSeen[];
  /** Requests seen per path, e.g. `/openid/v1/jwks`; watch requests count under `<path>?watch`. */
  hits(path: string): number;
  /** Create or replace a Pod, ReplicaSet, Deployment, Job, CronJob or Node (uid and resourceVersion filled in); watchers see it. */
  put(object: KubeObject): KubeObject;
  /** Delete an object; pod watchers see DELETED. */
  remove(kind: string, namespace: string | undefined, name: string): void;
  /** Forget the event history: watches from an older resourceVersion get a 410 Gone ERROR event. */
  compact(): void;
  /** End every open watch from the server side, as kube-apiserver does when its watch timeout expires. */
  dropWatches(): void;
  /** Pod watches open now. */
  openWatches(): number;
  /** TCP connections accepted so far (refused ones while down included). */
  connectionAttempts(): number;
  stop(): Promise<void>;
}

/** A Kubernetes object as JSON: `kind`, `metadata` and whatever else the kind has. */
export interface KubeObject {
  kind: string;
  apiVersion?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

interface KnownToken {
  user: KubeUser;
  audiences?: string[];
  expiresAt?: number;
  revoked: boolean;
}

const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

export async function startKubeApiServer(): Promise<KubeApiServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-kube-'));
  const ca = await createTestCa('tessera-test-kube-ca');
  const otherCa = await createTestCa('unrelated-ca');
  const serving = await issueLeaf(ca, 'server', 'CN=kube-apiserver');
  const reviewerUsername = 'system:serviceaccount:tessera-system:tessera';
  const clientCert = await issueLeaf(
    ca,
    'client',
    `CN=${reviewerUsername}, O=system:serviceaccounts`,
  );
  const reviewerToken = randomBytes(24).toString('base64url');
  const signingKey = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(signingKey.publicKey)), use: 'sig', alg: 'RS256' };
  jwk.kid = createHash('sha256')
    .update(
      Buffer.from(
        (await exportSPKI(signingKey.publicKey)).replace(/-----[^-]+-----|\s/g, ''),
        'base64',
      ),
    )
    .digest('base64url');

  const known = new Map<string, KnownToken>();
  const seen: ReviewSeen[] = [];
  const hitCounts = new Map<string, number>();
  const sockets = new Set<Socket>();
  let down = false;
  let delayMs = 0;
  let forbidden = false;
  let failStatus: number | undefined;
  let kubeconfigCount = 0;
  const objects = new Map<string, KubeObject>();
  let revision = 100;
  let compactedAt = 0;
  const history: Array<{ rv: number; type: string; object: KubeObject }> = [];
  const watchers = new Set<{ namespace: string; res: ServerResponse }>();
  const keyOf = (kind: string, namespace: string | undefined, name: string) =>
    `${kind}/${namespace ?? ''}/${name}`;
  const emit = (type: string, object: KubeObject) => {
    if (object.kind !== 'Pod') return;
    history.push({ rv: Number(object.metadata.resourceVersion), type, object });
    for (const watcher of watchers)
      if (watcher.namespace === object.metadata.namespace)
        watcher.res.write(`${JSON.stringify({ type, object })}\n`);
  };

  const server: Server = createServer(
    {
      cert: serving.certPem,
      key: serving.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => void handle(req, res),
  );
  let connectionCount = 0;
  server.on('connection', (socket: Socket) => {
    connectionCount += 1;
    if (down) return void socket.destroy();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const url = `https://127.0.0.1:${port}`;
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);

  const callerOf = (req: IncomingMessage): string | undefined => {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined) return bearer === reviewerToken ? reviewerUsername : undefined;
    const socket = req.socket as TLSSocket;
    if (!socket.authorized) return undefined;
    const cn = socket.getPeerCertificate().subject?.CN;
    return typeof cn === 'string' ? cn : undefined;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', url).pathname;
    hitCounts.set(path, (hitCounts.get(path) ?? 0) + 1);
    const body = await readBody(req);
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      return send(res, 200, {
        issuer: url,
        jwks_uri: `${url}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (req.method === 'GET' && path === '/openid/v1/jwks') {
      return send(
        res,
        200,
        { keys: [jwk] },
        { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=3600' },
      );
    }
    const caller = callerOf(req);
    if (caller === undefined) return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    if (req.method === 'GET') {
      const query = new URL(req.url ?? '/', url).searchParams;
      if (query.get('watch') === 'true')
        hitCounts.set(`${path}?watch`, (hitCounts.get(`${path}?watch`) ?? 0) + 1);
      if (failStatus !== undefined)
        return send(res, failStatus, status(failStatus, 'InternalError', 'induced failure'));
      return serveResource(path, query, res);
    }
    if (req.method !== 'POST' || path !== '/apis/authentication.k8s.io/v1/tokenreviews') {
      return send(
        res,
        404,
        status(404, 'NotFound', 'the server could not find the requested resource'),
      );
    }
    if (forbidden) {
      const message = `tokenreviews.authentication.k8s.io is forbidden: User "${caller}" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope`;
      return send(res, 403, {
        ...status(403, 'Forbidden', message),
        details: { group: 'authentication.k8s.io', kind: 'tokenreviews' },
      });
    }
    if (failStatus !== undefined)
      return send(res, failStatus, status(failStatus, 'InternalError', 'induced failure'));
    const review = parseReview(body);
    if (!review) return send(res, 400, status(400, 'BadRequest', 'invalid TokenReview'));
    seen.push({ token: review.token, audiences: review.audiences, caller });
    return send(res, 201, {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec:
        review.audiences.length > 0
          ? { token: review.token, audiences: review.audiences }
          : { token: review.token },
      status: decide(known.get(review.token), review.audiences),
    });
  }

  const RESOURCE_PATHS: Array<[RegExp, string]> = [
    [/^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/, 'Pod'],
    [/^\/apis\/apps\/v1\/namespaces\/([^/]+)\/replicasets\/([^/]+)$/, 'ReplicaSet'],
    [/^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)$/, 'Deployment'],
    [/^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/]+)$/, 'Job'],
    [/^\/apis\/batch\/v1\/namespaces\/([^/]+)\/cronjobs\/([^/]+)$/, 'CronJob'],
  ];

  function serveResource(path: string, query: URLSearchParams, res: ServerResponse): void {
    const podList = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(path);
    if (podList) {
      const namespace = decodeURIComponent(podList[1] as string);
      if (query.get('watch') === 'true')
        return servePodWatch(namespace, Number(query.get('resourceVersion') ?? 0), res);
      const items = [...objects.values()].filter(
        (object) => object.kind === 'Pod' && object.metadata.namespace === namespace,
      );
      return send(res, 200, {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(revision) },
        items,
      });
    }
    const node = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path);
    const found = node
      ? objects.get(keyOf('Node', undefined, decodeURIComponent(node[1] as string)))
      : RESOURCE_PATHS.map(([pattern, kind]) => {
          const match = pattern.exec(path);
          return match
            ? (objects.get(
                keyOf(
                  kind,
                  decodeURIComponent(match[1] as string),
                  decodeURIComponent(match[2] as string),
                ),
              ) ?? null)
            : undefined;
        }).find((value) => value !== undefined);
    if (found) return send(res, 200, found);
    send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  function servePodWatch(namespace: string, from: number, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    if (from < compactedAt) {
      // What kube-apiserver does: a 200 stream carrying one ERROR event, then the end.
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${compactedAt})`) })}\n`,
      );
      return;
    }
    for (const event of history) {
      if (event.rv > from && event.object.metadata.namespace === namespace)
        res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
    }
    const watcher = { namespace, res };
    watchers.add(watcher);
    res.on('close', () => watchers.delete(watcher));
  }

  return {
    url,
    issuer: url,
    caPem: ca.certPem,
    caFile,
    reviewerUsername,
    kubeconfig(options = {}) {
      const user =
        options.auth === 'client-cert'
          ? {
              'client-certificate-data': b64(clientCert.certPem),
              'client-key-data': b64(clientCert.keyPem),
            }
          : { token: options.token ?? reviewerToken };
      const trusted = options.trust === 'other-ca' ? otherCa.certPem : ca.certPem;
      const file = join(dir, `kubeconfig-${++kubeconfigCount}.yaml`);
      writeFileSync(
        file,
        toYaml({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'stand-in',
              cluster: { server: url, 'certificate-authority-data': b64(trusted) },
            },
          ],
          users: [{ name: 'tessera', user }],
          contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'tessera' } }],
          'current-context': 'stand-in',
        }),
        { mode: 0o600 },
      );
      return file;
    },
    addToken(token, user, options = {}) {
      known.set(token, {
        user,
        ...(options.audiences ? { audiences: options.audiences } : {}),
        revoked: false,
      });
    },
    async issueToken(options) {
      const iat = options.iat ?? Math.floor(Date.now() / 1000);
      const exp = iat + (options.ttlSeconds ?? 3600);
      const [jti, saUid, podUid, nodeUid] = [
        randomUUID(),
        randomUUID(),
        options.podUid ?? randomUUID(),
        randomUUID(),
      ];
      const sub = `system:serviceaccount:${options.namespace}:${options.serviceAccount}`;
      const binding: Record<string, unknown> = {
        namespace: options.namespace,
        serviceaccount: { name: options.serviceAccount, uid: saUid },
      };
      if (options.pod) binding.pod = { name: options.pod, uid: podUid };
      if (options.node) binding.node = { name: options.node, uid: nodeUid };
      const token = await new SignJWT({ 'kubernetes.io': binding, jti })
        .setProtectedHeader({ alg: 'RS256', kid: jwk.kid! })
        .setIssuer(url)
        .setSubject(sub)
        .setAudience(options.audiences)
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(exp)
        .sign(signingKey.privateKey);
      const extra: Record<string, string[]> = {
        'authentication.kubernetes.io/credential-id': [`JTI=${jti}`],
      };
      if (options.pod)
        Object.assign(extra, {
          'authentication.kubernetes.io/pod-name': [options.pod],
          'authentication.kubernetes.io/pod-uid': [podUid],
        });
      if (options.node)
        Object.assign(extra, {
          'authentication.kubernetes.io/node-name': [options.node],
          'authentication.kubernetes.io/node-uid': [nodeUid],
        });
      const groups = [
        'system:serviceaccounts',
        `system:serviceaccounts:${options.namespace}`,
        'system:authenticated',
      ];
      known.set(token, {
        user: { username: sub, uid: saUid, groups, extra },
        audiences: options.audiences,
        expiresAt: exp,
        revoked: false,
      });
      return token;
    },
    revoke: (token) => setRevoked(token, true),
    restore: (token) => setRevoked(token, false),
    setDown(value) {
      down = value;
      if (down) for (const socket of sockets) socket.destroy();
    },
    setDelay: (ms) => void (delayMs = ms),
    setForbidden: (value) => void (forbidden = value),
    failWith: (value) => void (failStatus = value),
    reviews: () => seen.map((review) => ({ ...review, audiences: [...review.audiences] })),
    put(object) {
      const key = keyOf(object.kind, object.metadata.namespace, object.metadata.name);
      const previous = objects.get(key);
      revision += 1;
      const stored: KubeObject = structuredClone({
        ...object,
        metadata: {
          ...object.metadata,
          uid: object.metadata.uid ?? randomUUID(),
          resourceVersion: String(revision),
        },
      });
      objects.set(key, stored);
      emit(previous ? 'MODIFIED' : 'ADDED', stored);
      return structuredClone(stored);
    },
    remove(kind, namespace, name) {
      const key = keyOf(kind, namespace, name);
      const previous = objects.get(key);
      if (!previous) return;
      objects.delete(key);
      revision += 1;
      emit('DELETED', {
        ...previous,
        metadata: { ...previous.metadata, resourceVersion: String(revision) },
      });
    },
    compact() {
      // Every version a client holds is now too old; a fresh list returns one that is not.
      revision += 1;
      compactedAt = revision;
      history.length = 0;
    },
    dropWatches() {
      for (const watcher of watchers) watcher.res.end();
      watchers.clear();
    },
    openWatches: () => watchers.size,
    connectionAttempts: () => connectionCount,
    hits: (path) => hitCounts.get(path) ?? 0,
    async stop() {
      for (const watcher of watchers) watcher.res.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  function setRevoked(token: string, revoked: boolean): void {
    const entry = known.get(token);
    if (!entry) throw new Error('revoke/restore of a token the stand-in does not know');
    entry.revoked = revoked;
  }
}

/** What kube-apiserver decides for a token, in its own words. */
function decide(entry: KnownToken | undefined, requested: string[]): Record<string, unknown> {
  const refuse = (error: string) => ({ user: {}, error });
  if (!entry)
    return refuse(
      '[invalid bearer token, square/go-jose: error in cryptographic primitive, token lookup failed]',
    );
  if (entry.revoked) return refuse('[invalid bearer token, Token has been invalidated]');
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now() / 1000)
    return refuse('[invalid bearer token, service account token has expired]');
  const targets = requested.length > 0 ? requested : [API_AUDIENCE];
  const granted = entry.audiences
    ? entry.audiences.filter((aud) => targets.includes(aud))
    : targets;
  if (granted.length === 0) {
    return refuse(
      `[invalid bearer token, token audiences ${JSON.stringify(entry.audiences)} is invalid for the target audiences ${JSON.stringify(targets)}]`,
    );
  }
  return { authenticated: true, user: entry.user, audiences: granted };
}

function parseReview(body: string): { token: string; audiences: string[] } | undefined {
  try {
    const value = JSON.parse(body) as {
      kind?: unknown;
      spec?: { token?: unknown; audiences?: unknown };
    };
    if (value.kind !== 'TokenReview' || typeof value.spec?.token !== 'string') return undefined;
    const audiences = Array.isArray(value.spec.audiences)
      ? value.spec.audiences.filter((aud): aud is string => typeof aud === 'string')
      : [];
    return { token: value.spec.token, audiences };
  } catch {
    return undefined;
  }
}

function status(code: number, reason: string, message: string) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
}

function send(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(code, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');
