/**
 * One error type for every failure a client can cause or see. Carries the RFC 6749 wire
 * `code`, the HTTP `status`, a client-safe `description`, and a log-only `detail`.
 * `src/sts/error-response.ts` is the one place that turns it into an HTTP response.
 *
 * @example
 *   throw invalidRequest('subject_token is expired', { exp: 1700000000 });
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_target'
  | 'invalid_scope'
  | 'access_denied'
  | 'slow_down'
  | 'temporarily_unavailable'
  | 'server_error'
  | 'not_found'
  | 'method_not_allowed';

/**
 * Why a request was refused, as a stable token machines can match on (as jose's `code`):
 * logs, tests and the CLI read this, never the prose of `description` or `detail`.
 * Each module adds the reasons it raises; a reason names the cause, not the HTTP outcome.
 */
export const ERROR_REASONS = [
  // request parsing (src/sts/request.ts, body.ts)
  'unsupported_content_type',
  'malformed_body',
  'body_too_large',
  'unreadable_body',
  'missing_parameter',
  'duplicated_parameter',
  'parameter_too_long',
  'unsupported_grant_type',
  'unsupported_token_type',
  'actor_token_type_mismatch',
  'invalid_duration',
  'csr_not_allowed',
  'csr_required',
  // listener and routing
  'not_found',
  'method_not_allowed',
  'client_certificate_required',
  'rate_limited',
  // signing keys (src/keys/)
  'signing_key_unavailable',
  'signing_algorithm_not_configured',
  // trust policies (src/trust-policies/)
  'session_tag_invalid',
  // subject- and actor-token verification (src/verifiers/)
  'token_too_large',
  'malformed_token',
  'algorithm_not_accepted',
  'header_not_accepted',
  'unknown_issuer',
  'unknown_kid',
  'no_key_for_algorithm',
  'bad_signature',
  'legacy_token',
  'missing_expiry',
  'token_expired',
  'token_not_yet_valid',
  'lifetime_too_long',
  'audience_not_accepted',
  'not_projected_token',
  'review_refused',
  'review_not_service_account',
  'review_subject_mismatch',
  'review_audience_not_accepted',
  'keys_unavailable',
  'review_unavailable',
  'review_busy',
  'verifier_fault',
  // issuing (src/issuers/, the exchange in src/sts/exchange.ts, rendering in src/trust-policies/)
  'scope_not_allowed',
  'policy_denied',
  'role_does_not_issue',
  'issuer_not_configured',
  'template_value_unsafe',
  'subject_too_long',
  'malformed_csr',
  'csr_key_not_allowed',
  'csr_signature_algorithm_not_allowed',
  'csr_signature_invalid',
  'invalid_spiffe_id',
  'invalid_dns_name',
  'ca_unavailable',
  'ca_expired',
  // the HTTP surface: role selection and parameters (src/sts/select-role.ts, request.ts, rate-limit.ts)
  'unknown_role',
  'role_required',
  'no_role_for_audience',
  'ambiguous_role',
  'audience_not_allowed',
  'role_has_no_audience',
  'invalid_parameter_type',
  'rate_limit_table_full',
  // pod attestation (src/attestation)
  'pod_not_named',
  'pod_not_found',
  'pod_replaced',
  'pod_lookup_unavailable',
] as const;

export type ErrorReason = (typeof ERROR_REASONS)[number];

export interface TesseraErrorOptions {
  /** The machine-readable cause; see ERROR_REASONS. */
  reason: ErrorReason;
  /** Log-only context: never sent to the client. Must not contain tokens, PINs or keys. */
  detail?: Record<string, unknown>;
  cause?: unknown;
  /** Extra response headers, e.g. `Retry-After`. */
  headers?: Record<string, string>;
  /** Overrides the level the refusal is logged at (info, warn for 5xx), e.g. debug for client noise. */
  logLevel?: 'debug' | 'info' | 'warn';
}

export class TesseraError extends Error {
  readonly code: OAuthErrorCode;
  readonly reason: ErrorReason;
  readonly status: number;
  readonly description: string;
  readonly detail: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly logLevel: 'debug' | 'info' | 'warn' | undefined;

  constructor(
    code: OAuthErrorCode,
    status: number,
    description: string,
    options: TesseraErrorOptions,
  ) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TesseraError';
    this.code = code;
    this.reason = options.reason;
    this.status = status;
    this.description = description;
    this.detail = options.detail;
    this.headers = options.headers;
    this.logLevel = options.logLevel;
  }
}

export const isTesseraError = (error: unknown): error is TesseraError =>
  error instanceof TesseraError;

type Factory = (description: string, options: TesseraErrorOptions) => TesseraError;
const factory =
  (code: OAuthErrorCode, status: number): Factory =>
  (description, options) =>
    new TesseraError(code, status, description, options);

export const invalidRequest = factory('invalid_request', 400);
export const unsupportedGrantType = factory('unsupported_grant_type', 400);
export const invalidTarget = factory('invalid_target', 400);
/** RFC 8705: the token endpoint requires a client certificate chaining to the configured CA. */
export const invalidClient = factory('invalid_client', 401);
export const invalidScope = factory('invalid_scope', 400);
export const accessDenied = factory('access_denied', 403);
export const payloadTooLarge = factory('invalid_request', 413);
export const temporarilyUnavailable = factory('temporarily_unavailable', 503);
export const notFound = factory('not_found', 404);
export const methodNotAllowed = factory('method_not_allowed', 405);
export const slowDown = (retryAfterSeconds: number, options: TesseraErrorOptions): TesseraError =>
  new TesseraError('slow_down', 429, 'too many requests; retry later', {
    ...options,
    headers: {
      ...options.headers,
      'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
    },
  });
