import { Hono, type Context } from 'hono';
import { methodNotAllowed as methodNotAllowedMiddleware } from 'hono/method-not-allowed';
import { requestId } from 'hono/request-id';
import type { JWK } from 'jose';
import { invalidClient, isTesseraError, methodNotAllowed, notFound } from '../errors.js';
import type { JwsAlgorithm } from '../keys/types.js';
import type { ClientCertificate } from '../trust-policies/types.js';
import type { AuditEvent } from '../observability/index.js';
import { auditExchange } from './audit.js';
import { discoveryDocument } from './discovery.js';
import { errorResponse, NO_STORE } from './errors.js';
import { exchangeToken, type ExchangeDeps } from './exchange.js';
import { listenerScopeOf, servesRoute } from './listener-scope.js';
import { createRateLimiter, identityBucket, type RateLimitSettings } from './rate-limit.js';
import { readBody, UnreadableBodyError, UNREADABLE_BODY } from './body.js';
import { parseTokenExchange } from './request.js';

export { parseTokenExchange, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_X509_SVID } from './request.js';
export type { TokenExchangeRequest } from './request.js';
export { exchangeToken } from './exchange.js';
export type { ExchangeDeps, ExchangeResponse } from './exchange.js';
export { discoveryDocument } from './discovery.js';
export { auditExchange, auditIdentity, auditDecision, auditIssued, type ExchangeAudit } from './audit.js';
export { selectRole } from './select-role.js';
export { clientAddress, trustedProxies } from './client-address.js';
export type { TrustedProxies } from './client-address.js';
export type { RateLimitSettings } from './rate-limit.js';
export { LISTENER_SCOPE_ENV, servesRoute, type ListenerScope } from './listener-scope.js';

/** RFC 8693 requests are small; a larger body is an attack or a mistake. */
export const MAX_BODY_BYTES = 64 * 1024;
/** A received `X-Request-Id` longer than this, or with characters outside `[A-Za-z0-9_=-]`, is replaced by a generated one. */
export const MAX_REQUEST_ID_LENGTH = 128;

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
  clientAddress?: (c: Context) => string | undefined;
  /**
   * Present when POST /v1/token requires mutual TLS: the caller's certificate, verified against
   * the client CA, or `undefined` when it presented none that chains to it (401 invalid_client).
   */
  clientCertificate?: (c: Context) => ClientCertificate | undefined;
  /** Where each token exchange's audit event goes (one event per `POST /v1/token`). */
  audit?: (event: AuditEvent) => void;
}

/**
 * The HTTP surface (docs/architecture.md, "External contract"; openapi.yaml): handlers only parse, call a domain function and serialize.
 *
 * @example const app = createStsApp(deps); const res = await app.request('/healthz');
 */
export function createStsApp(deps: StsDeps): Hono {
  const app = new Hono();
  const limits = deps.rateLimit?.enabled ? deps.rateLimit : undefined;
  const takeToken = limits && createRateLimiter({ perSecond: limits.perSecond, burst: limits.burst, now: deps.now });
  const takeIdentityToken = limits && createRateLimiter({ ...limits.perIdentity, now: deps.now });
  const exchangeDeps: ExchangeDeps = takeIdentityToken ? { ...deps, limitIdentity: (identity) => takeIdentityToken(identityBucket(identity)) } : deps;

  app.onError((error, c) => errorResponse(error, c, deps.logger));
  // First, so every answer (errors, 404s, the body-limit refusal) carries the id.
  app.use(requestId({ limitLength: MAX_REQUEST_ID_LENGTH }));
  app.notFound((c) => errorResponse(notFound('no such route'), c, deps.logger));
  // Before method checks: a listener that does not serve a route must not even reveal it exists.
  app.use(async (c, next) => {
    if (!servesRoute(listenerScopeOf(c), c.req.path)) throw notFound('no such route');
    await next();
  });
  app.use(
    methodNotAllowedMiddleware({
      app,
      onMethodNotAllowed: (c, methods) => errorResponse(methodNotAllowed('method not allowed', { headers: { Allow: methods.join(', ') } }), c, deps.logger),
    }),
  );

  app.post(
    '/v1/token',
    auditExchange({
      write: deps.audit ?? (() => undefined),
      policyVersion: () => deps.policies.current().version,
      clientAddress: deps.clientAddress,
      clientCertificate: deps.clientCertificate,
    }),
    async (c) => {
      const started = performance.now();
      let outcome = 'ok';
      let tokenType = '';
      let role = '';
      try {
        const caller = c.get('tesseraCaller');
        const clientCert = deps.clientCertificate && requireClientCertificate(caller.certificate);
        takeToken?.(caller.address ?? 'unknown');
        const request = { ...parseTokenExchange(await readBody(c, MAX_BODY_BYTES), c.req.header('content-type')), ...(clientCert && { clientCert }) };
        tokenType = request.requestedTokenType;
        const audit = c.get('tesseraAudit');
        audit.requestedTokenType = request.requestedTokenType;
        if (request.audience.length > 0) audit.audience = request.audience;
        const result = await exchangeToken(exchangeDeps, request, audit);
        role = result.role;
        return c.json(result.body, 200, { ...NO_STORE });
      } catch (error) {
        outcome = error instanceof UnreadableBodyError ? UNREADABLE_BODY : isTesseraError(error) ? error.code : 'server_error';
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

function requireClientCertificate(certificate: ClientCertificate | undefined): ClientCertificate {
  if (!certificate) throw invalidClient('a client certificate issued by a trusted CA is required');
  return certificate;
}
