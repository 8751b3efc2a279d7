import { Hono, type Context } from 'hono';
import { methodNotAllowed as methodNotAllowedMiddleware } from 'hono/method-not-allowed';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { JWK } from 'jose';
import { methodNotAllowed, notFound } from '../errors.js';
import type { JwsAlgorithm } from '../keys/index.js';
import type { ClientCertificate } from '../trust-policies/index.js';
import type { AuditEvent } from '../observability/index.js';
import { readBody } from './body.js';
import { discoveryDocument } from './discovery.js';
import { errorResponse, type Answer } from './error-response.js';
import type { ExchangeDeps } from './exchange.js';
import { outgoingOf, requestViewOf, type RequestView } from './incoming.js';
import { listenerScopeOf, servesRoute } from './listener-scope.js';
import { directTokenHandler, type DirectHandler } from './node-token.js';
import type { RateLimitSettings } from './rate-limit.js';
import { requestIdMiddleware } from './request-id.js';
import { tokenEndpoint, type TokenCall } from './token-endpoint.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, unknown>;
}

export interface StsDeps extends ExchangeDeps {
  /** The broker's issuer, for the discovery document. */
  issuer: string;
  algorithms: readonly JwsAlgorithm[];
  /** Public signing keys for `/.well-known/jwks.json`. */
  jwks: () => Promise<{ keys: JWK[] }>;
  /** How long relying parties may cache the JWKS; a new key is published at least this long before it signs. */
  jwksCacheSeconds: number;
  readiness: () => Promise<Readiness>;
  metricsText?: () => Promise<{ contentType: string; body: string }>;
  trustBundle?: (jwtKeys: JWK[]) => Promise<{ pem: string; spiffe: object }>;
  rateLimit?: RateLimitSettings;
  /** The caller's address (through trusted proxies), for rate limiting; absent under `app.request()`. */
  clientAddress?: (request: RequestView) => string | undefined;
  /**
   * Present when POST /v1/token requires mutual TLS: the caller's certificate, verified against
   * the client CA, or `undefined` when it presented none that chains to it (401 invalid_client).
   */
  clientCertificate?: (request: RequestView) => ClientCertificate | undefined;
  /** Where each token exchange's audit event goes (one event per `POST /v1/token`). */
  audit?: (event: AuditEvent) => void;
}

/** The HTTP surface of a broker: the hono app, and the node fast path of its token endpoint. */
export interface Sts {
  hono: Hono;
  /** `POST /v1/token` served from node's request and response, for the node listeners. */
  direct: DirectHandler;
}

/**
 * The HTTP surface (docs/architecture.md, "External contract"; openapi.yaml): handlers only parse,
 * call a domain function and serialize. The token endpoint is one function behind two doors: the
 * hono route (`app.request()`, and whatever the fast path leaves to hono) and {@link Sts.direct}.
 *
 * @example const { hono, direct } = createSts(deps);
 */
export function createSts(deps: StsDeps): Sts {
  const endpoint = tokenEndpoint(deps);
  return {
    hono: honoApp(deps, endpoint),
    direct: directTokenHandler(endpoint, deps.logger),
  };
}

/**
 * The hono app alone (every request through hono).
 *
 * @example const app = createStsApp(deps); const res = await app.request('/healthz');
 */
export const createStsApp = (deps: StsDeps): Hono => createSts(deps).hono;

function honoApp(deps: StsDeps, endpoint: (call: TokenCall) => Promise<Answer>): Hono {
  const app = new Hono();
  app.onError((error, c) => errorResponse(error, c, deps.logger));
  // First, so every answer (errors, 404s, the body-limit refusal) carries the id.
  app.use(requestIdMiddleware());
  app.notFound((c) =>
    errorResponse(notFound('no such route', { reason: 'not_found' }), c, deps.logger),
  );
  // Before method checks: a listener that does not serve a route must not even reveal it exists.
  app.use(async (c, next) => {
    if (!servesRoute(listenerScopeOf(c), c.req.path))
      throw notFound('no such route', { reason: 'not_found' });
    await next();
  });
  app.use(
    methodNotAllowedMiddleware({
      app,
      onMethodNotAllowed: (c, methods) =>
        errorResponse(
          methodNotAllowed('method not allowed', {
            reason: 'method_not_allowed',
            headers: { Allow: methods.join(', ') },
          }),
          c,
          deps.logger,
        ),
    }),
  );
  app.post('/v1/token', async (c) =>
    answer(
      c,
      await endpoint({
        ...requestViewOf(c),
        requestId: c.get('requestId'),
        path: c.req.path,
        readBody: (maxBytes) => readBody(c, maxBytes),
      }),
    ),
  );
  addReadRoutes(app, deps);
  return app;
}

/** Discovery, JWKS, trust bundle, probes and metrics. */
function addReadRoutes(app: Hono, deps: StsDeps): void {
  const publicCache = { 'Cache-Control': `public, max-age=${deps.jwksCacheSeconds}` };
  app.get('/.well-known/openid-configuration', (c) =>
    c.json(discoveryDocument(deps.issuer, deps.algorithms), 200, publicCache),
  );
  app.get('/.well-known/jwks.json', async (c) => c.json(await deps.jwks(), 200, publicCache));

  app.get('/v1/trust-bundle', async (c) => {
    if (!deps.trustBundle)
      throw notFound('this broker issues no x509-svid credentials', { reason: 'not_found' });
    const bundle = await deps.trustBundle((await deps.jwks()).keys);
    const accept = c.req.header('accept') ?? '';
    if (accept.includes('application/x-pem-file') || c.req.query('format') === 'pem') {
      return c.body(bundle.pem, 200, {
        'Content-Type': 'application/x-pem-file',
        'Cache-Control': 'public, max-age=300',
      });
    }
    return c.json({ x509_authorities: bundle.pem, spiffe_bundle: bundle.spiffe }, 200, {
      'Cache-Control': 'public, max-age=300',
    });
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const readiness = await deps.readiness();
    return c.json(
      { status: readiness.ready ? 'ready' : 'not ready', checks: readiness.checks },
      readiness.ready ? 200 : 503,
    );
  });
  app.get('/metrics', async (c) => {
    if (!deps.metricsText) throw notFound('metrics are disabled', { reason: 'not_found' });
    const { contentType, body } = await deps.metricsText();
    return c.body(body, 200, { 'Content-Type': contentType });
  });
}

/**
 * The token endpoint's answer. Behind a node listener a plain header record, which
 * @hono/node-server writes as it is; `c.json` would build a `Headers` object that the listener
 * then turns back into a record.
 */
function answer(c: Context, result: Answer): Response {
  const headers = { 'content-type': 'application/json', ...result.headers };
  if (!outgoingOf(c)) return c.body(result.body, result.status as ContentfulStatusCode, headers);
  return new Response(result.body, { status: result.status, headers });
}
