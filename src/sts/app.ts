import { Hono, type Context } from 'hono';
import { methodNotAllowed as methodNotAllowedMiddleware } from 'hono/method-not-allowed';
import type { JWK } from 'jose';
import { invalidClient, isTesseraError, methodNotAllowed, notFound } from '../errors.js';
import type { JwsAlgorithm } from '../keys/index.js';
import type { ClientCertificate } from '../trust-policies/index.js';
import type { AuditEvent, Metrics } from '../observability/index.js';
import { auditExchange } from './audit.js';
import { discoveryDocument } from './discovery.js';
import { errorResponse, NO_STORE } from './error-response.js';
import { exchangeToken, type ExchangeDeps } from './exchange.js';
import { outgoingOf, requestHeader } from './incoming.js';
import { listenerScopeOf, servesRoute } from './listener-scope.js';
import { createRateLimiter, identityBucket, type RateLimitSettings } from './rate-limit.js';
import { readBody, UnreadableBodyError, UNREADABLE_BODY } from './body.js';
import { requestIdMiddleware } from './request-id.js';
import { parseTokenExchange } from './request.js';

/** RFC 8693 requests are small; a larger body is an attack or a mistake. */
const MAX_BODY_BYTES = 64 * 1024;

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
  app.post(
    '/v1/token',
    auditExchange({
      write: deps.audit ?? (() => undefined),
      policyVersion: () => deps.policies.current().version,
      clientAddress: deps.clientAddress,
      clientCertificate: deps.clientCertificate,
    }),
    tokenHandler(deps),
  );
  addReadRoutes(app, deps);
  return app;
}

/** `POST /v1/token`: parse, exchange, answer; every outcome is counted once. */
function tokenHandler(deps: StsDeps) {
  const limits = deps.rateLimit?.enabled ? deps.rateLimit : undefined;
  const takeToken =
    limits &&
    createRateLimiter({ perSecond: limits.perSecond, burst: limits.burst, now: deps.now });
  const takeIdentityToken = limits && createRateLimiter({ ...limits.perIdentity, now: deps.now });
  const exchangeDeps: ExchangeDeps = takeIdentityToken
    ? { ...deps, limitIdentity: (identity) => takeIdentityToken(identityBucket(identity)) }
    : deps;
  const record = exchangeRecorder(deps.metrics);
  return async (c: Context) => {
    const started = performance.now();
    let outcome = 'ok';
    let tokenType = '';
    let role = '';
    try {
      const caller = c.get('tesseraCaller');
      const clientCert = deps.clientCertificate && requireClientCertificate(caller.certificate);
      takeToken?.(caller.address ?? 'unknown');
      const parsed = parseTokenExchange(
        await readBody(c, MAX_BODY_BYTES),
        requestHeader(c, 'content-type'),
      );
      const request = clientCert ? { ...parsed, clientCert } : parsed;
      tokenType = request.requestedTokenType;
      const audit = c.get('tesseraAudit');
      audit.requestedTokenType = request.requestedTokenType;
      if (request.audience.length > 0) audit.audience = request.audience;
      const result = await exchangeToken(exchangeDeps, request, audit);
      role = result.role;
      return answer(c, result.body);
    } catch (error) {
      outcome =
        error instanceof UnreadableBodyError
          ? UNREADABLE_BODY
          : isTesseraError(error)
            ? error.code
            : 'server_error';
      // Refusals after role selection carry the role, so per-role denial rates can be watched.
      if (isTesseraError(error) && typeof error.detail?.role === 'string') role = error.detail.role;
      throw error;
    } finally {
      record(outcome, role, tokenType, (performance.now() - started) / 1000);
    }
  };
}

/**
 * Counts an exchange under its label set: the prom-client child of each label set is made once
 * and found again by one string key, not rebuilt from a label object per exchange.
 */
function exchangeRecorder(
  metrics: Metrics | undefined,
): (outcome: string, role: string, tokenType: string, seconds: number) => void {
  if (!metrics) return () => undefined;
  const counters = new Map<string, { inc(): void }>();
  const durations = new Map<string, { observe(value: number): void }>();
  // Label values come from role names and a fixed set of codes and types: a policy reload can
  // retire roles, so the lookup table is bounded and simply rebuilt when it fills up.
  const MAX_LABEL_SETS = 10_000;
  return (outcome, role, tokenType, seconds) => {
    const key = `${outcome}\0${role}\0${tokenType}`;
    let counter = counters.get(key);
    if (!counter) {
      if (counters.size >= MAX_LABEL_SETS) counters.clear();
      counter = metrics.exchanges.labels({ result: outcome, role, token_type: tokenType });
      counters.set(key, counter);
    }
    counter.inc();
    let duration = durations.get(outcome);
    if (!duration) {
      duration = metrics.exchangeDuration.labels({ result: outcome });
      durations.set(outcome, duration);
    }
    duration.observe(seconds);
  };
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
 * The 200 answer of an exchange. Behind a node listener a plain header record, which
 * @hono/node-server writes as it is; `c.json` would build a `Headers` object that the listener
 * then turns back into a record.
 */
function answer(c: Context, body: object): Response {
  if (!outgoingOf(c)) return c.json(body, 200, NO_STORE);
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { 'content-type': 'application/json', ...NO_STORE },
  });
}

function requireClientCertificate(certificate: ClientCertificate | undefined): ClientCertificate {
  if (!certificate)
    throw invalidClient('a client certificate issued by a trusted CA is required', {
      reason: 'client_certificate_required',
    });
  return certificate;
}
