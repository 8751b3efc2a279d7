import { invalidClient, isTesseraError } from '../errors.js';
import type { Metrics } from '../observability/index.js';
import type { ClientCertificate } from '../trust-policies/index.js';
import type { StsDeps } from './app.js';
import { closeAudit, openAudit } from './audit.js';
import { UnreadableBodyError, UNREADABLE_BODY } from './body.js';
import { errorAnswer, NO_STORE, type Answer } from './error-response.js';
import { exchangeToken, type ExchangeDeps } from './exchange.js';
import type { RequestView } from './incoming.js';
import { createRateLimiter, identityBucket } from './rate-limit.js';
import { parseTokenExchange } from './request.js';

/** RFC 8693 requests are small; a larger body is an attack or a mistake. */
export const MAX_BODY_BYTES = 64 * 1024;

/** One `POST /v1/token` as the endpoint reads it, whoever serves it (the hono app or the node fast path). */
export interface TokenCall extends RequestView {
  requestId: string;
  /** The request path, for the log line of a refusal. */
  path: string;
  /** The body as text, at most `maxBytes` (else 413, or 400 when it cannot be read). */
  readBody(maxBytes: number): Promise<string>;
}

/**
 * `POST /v1/token`: open the audit event, parse, exchange, answer; every outcome is counted once,
 * audited once, and a refusal becomes its RFC 6749 error answer here, never an exception.
 */
export function tokenEndpoint(deps: StsDeps): (call: TokenCall) => Promise<Answer> {
  const limits = deps.rateLimit?.enabled ? deps.rateLimit : undefined;
  const takeToken =
    limits &&
    createRateLimiter({ perSecond: limits.perSecond, burst: limits.burst, now: deps.now });
  const takeIdentityToken = limits && createRateLimiter({ ...limits.perIdentity, now: deps.now });
  const exchangeDeps: ExchangeDeps = takeIdentityToken
    ? { ...deps, limitIdentity: (identity) => takeIdentityToken(identityBucket(identity)) }
    : deps;
  const record = exchangeRecorder(deps.metrics);
  const write = deps.audit ?? (() => undefined);
  return async (call) => {
    const started = performance.now();
    const caller = {
      address: deps.clientAddress?.(call),
      certificate: deps.clientCertificate?.(call),
    };
    const audit = openAudit(
      call.requestId,
      caller,
      call.header('user-agent'),
      deps.policies.current().version,
    );
    let outcome = 'ok';
    let tokenType = '';
    let role = '';
    let answer: Answer;
    let failure: { error: unknown } | undefined;
    try {
      const clientCert = deps.clientCertificate && requireClientCertificate(caller.certificate);
      takeToken?.(caller.address ?? 'unknown');
      const parsed = parseTokenExchange(
        await call.readBody(MAX_BODY_BYTES),
        call.header('content-type'),
      );
      const request = clientCert ? { ...parsed, clientCert } : parsed;
      tokenType = request.requestedTokenType;
      audit.requestedTokenType = request.requestedTokenType;
      if (request.audience.length > 0) audit.audience = request.audience;
      const result = await exchangeToken(exchangeDeps, request, audit);
      role = result.role;
      answer = { status: 200, headers: NO_STORE, body: JSON.stringify(result.body) };
    } catch (error) {
      failure = { error };
      outcome =
        error instanceof UnreadableBodyError
          ? UNREADABLE_BODY
          : isTesseraError(error)
            ? error.code
            : 'server_error';
      // Refusals after role selection carry the role, so per-role denial rates can be watched.
      if (isTesseraError(error) && typeof error.detail?.role === 'string') role = error.detail.role;
      answer = errorAnswer(error, deps.logger, call.path);
    }
    record(outcome, role, tokenType, (performance.now() - started) / 1000);
    closeAudit(audit, answer.status, failure?.error, started);
    write(audit);
    return answer;
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

function requireClientCertificate(certificate: ClientCertificate | undefined): ClientCertificate {
  if (!certificate)
    throw invalidClient('a client certificate issued by a trusted CA is required', {
      reason: 'client_certificate_required',
    });
  return certificate;
}
