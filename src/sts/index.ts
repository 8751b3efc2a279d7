import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { methodNotAllowed as methodNotAllowedMiddleware } from 'hono/method-not-allowed';
import type { JWK } from 'jose';
import { isTesseraError, methodNotAllowed, notFound, payloadTooLarge } from '../errors.js';
import type { JwsAlgorithm } from '../keys/types.js';
import { discoveryDocument } from './discovery.js';
import { errorResponse, NO_STORE } from './errors.js';
import { exchangeToken, type ExchangeDeps } from './exchange.js';
import { createRateLimiter } from './rate-limit.js';
import { parseTokenExchange } from './request.js';

export { parseTokenExchange, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_X509_SVID } from './request.js';
export type { TokenExchangeRequest } from './request.js';
export { exchangeToken } from './exchange.js';
export type { ExchangeDeps, ExchangeResponse, SvidIssuer } from './exchange.js';
export { discoveryDocument } from './discovery.js';
export { selectRole } from './select-role.js';

/** RFC 8693 requests are small; a larger body is an attack or a mistake. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface Readiness {
  ready: boolean;
  checks: Record<string, unknown>;
}

export interface StsDeps extends ExchangeDeps {
  algorithms: readonly JwsAlgorithm[];
  /** Public signing keys for `/.well-known/jwks.json`. */
  jwks: () => Promise<{ keys: JWK[] }>;
  /** How long relying parties may cache the JWKS; a new key is published at least this long before it signs. */
  jwksCacheSeconds: number;
  readiness: () => Promise<Readiness>;
  metricsText?: () => Promise<{ contentType: string; body: string }>;
  trustBundle?: (jwtKeys: JWK[]) => Promise<{ pem: string; spiffe: object }>;
  rateLimit?: { perSecond: number; burst: number };
  /** The caller's address, for rate limiting; absent under `app.request()`. */
  clientAddress?: (c: Context) => string | undefined;
}

/**
 * The HTTP surface (docs/architecture.md, "External contract"; openapi.yaml): handlers only parse, call a domain function and serialize.
 *
 * @example const app = createStsApp(deps); const res = await app.request('/healthz');
 */
export function createStsApp(deps: StsDeps): Hono {
  const app = new Hono();
  const takeToken = deps.rateLimit ? createRateLimiter({ ...deps.rateLimit, now: deps.now }) : undefined;

  app.onError((error, c) => errorResponse(error, c, deps.logger));
  app.notFound((c) => errorResponse(notFound('no such route'), c, deps.logger));
  app.use(
    methodNotAllowedMiddleware({
      app,
      onMethodNotAllowed: (c, methods) => errorResponse(methodNotAllowed('method not allowed', { headers: { Allow: methods.join(', ') } }), c, deps.logger),
    }),
  );

  app.post(
    '/v1/token',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => errorResponse(payloadTooLarge(`request body exceeds ${MAX_BODY_BYTES} bytes`), c, deps.logger),
    }),
    async (c) => {
      const started = performance.now();
      let outcome = 'ok';
      let tokenType = '';
      let role = '';
      try {
        takeToken?.(deps.clientAddress?.(c) ?? 'unknown');
        const request = parseTokenExchange(await c.req.text(), c.req.header('content-type'));
        tokenType = request.requestedTokenType;
        const result = await exchangeToken(deps, request);
        role = result.role;
        return c.json(result.body, 200, { ...NO_STORE });
      } catch (error) {
        outcome = isTesseraError(error) ? error.code : 'server_error';
        // Refusals after role selection carry the role, so per-role denial rates can be watched.
        if (isTesseraError(error) && typeof error.detail?.role === 'string') role = error.detail.role;
        throw error;
      } finally {
        deps.metrics?.exchanges.inc({ result: outcome, role, token_type: tokenType });
        deps.metrics?.exchangeDuration.observe({ result: outcome }, (performance.now() - started) / 1000);
      }
    },
  );

  app.get('/.well-known/openid-configuration', (c) =>
    c.json(discoveryDocument(deps.issuer, deps.algorithms), 200, { 'Cache-Control': `public, max-age=${deps.jwksCacheSeconds}` }),
  );
  app.get('/.well-known/jwks.json', async (c) =>
    c.json(await deps.jwks(), 200, { 'Cache-Control': `public, max-age=${deps.jwksCacheSeconds}` }),
  );

  app.get('/v1/trust-bundle', async (c) => {
    if (!deps.trustBundle) throw notFound('this broker issues no x509-svid credentials');
    const bundle = await deps.trustBundle((await deps.jwks()).keys);
    const accept = c.req.header('accept') ?? '';
    if (accept.includes('application/x-pem-file') || c.req.query('format') === 'pem') {
      return c.body(bundle.pem, 200, { 'Content-Type': 'application/x-pem-file', 'Cache-Control': 'public, max-age=300' });
    }
    return c.json({ x509_authorities: bundle.pem, spiffe_bundle: bundle.spiffe }, 200, { 'Cache-Control': 'public, max-age=300' });
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const readiness = await deps.readiness();
    return c.json({ status: readiness.ready ? 'ready' : 'not ready', checks: readiness.checks }, readiness.ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    if (!deps.metricsText) throw notFound('metrics are disabled');
    const { contentType, body } = await deps.metricsText();
    return c.body(body, 200, { 'Content-Type': contentType });
  });
  return app;
}
