import {
  invalidRequest,
  temporarilyUnavailable,
  TesseraError,
  type ErrorReason,
} from '../errors.js';

/**
 * Every refusal a verifier raises, in one table: its reason (what tests, logs and the CLI match
 * on), and the description the client reads. A description names the request parameter the
 * token came in, so the same verifier can refuse an `actor_token` in that parameter's words.
 */
export type TokenParameter = 'subject_token' | 'actor_token';

interface Refusal {
  /** 400: the token is bad; 503: the cluster's keys or API server cannot answer now. */
  unavailable?: true;
  describe: (parameter: TokenParameter) => string;
}

const bad = (text: string): Refusal => ({ describe: (parameter) => `${parameter} ${text}` });

const REFUSALS = {
  token_too_large: bad('is too large'),
  malformed_token: bad('is malformed'),
  algorithm_not_accepted: bad('algorithm is not accepted'),
  header_not_accepted: bad('header is not accepted'),
  unknown_issuer: bad('issuer is not trusted'),
  unknown_kid: bad('signing key is unknown'),
  no_key_for_algorithm: bad('signing key is unknown'),
  bad_signature: bad('signature is invalid'),
  legacy_token: bad('is a legacy service-account token; use a projected token'),
  missing_expiry: bad('has no expiry'),
  token_expired: bad('is expired'),
  token_not_yet_valid: bad('is not yet valid'),
  lifetime_too_long: bad("lifetime exceeds the cluster's maxTokenLifetime"),
  audience_not_accepted: bad('audience not accepted'),
  not_projected_token: bad('is not a projected service-account token'),
  review_refused: bad('is not valid'),
  review_not_service_account: bad('is not a service-account token'),
  review_subject_mismatch: bad('is not valid'),
  review_audience_not_accepted: bad('audience is not accepted'),
  keys_unavailable: {
    unavailable: true,
    describe: (parameter) => `${parameter} issuer keys are unavailable; retry later`,
  },
  review_unavailable: {
    unavailable: true,
    describe: () => 'the cluster API server cannot verify tokens right now; retry later',
  },
  review_busy: {
    unavailable: true,
    describe: () => 'too many subject tokens are being verified for this cluster; retry later',
  },
  verifier_fault: {
    unavailable: true,
    describe: (parameter) => `${parameter} cannot be verified right now; retry later`,
  },
} satisfies Partial<Record<ErrorReason, Refusal>>;

export type VerifierReason = keyof typeof REFUSALS;

export const isVerifierReason = (reason: unknown): reason is VerifierReason =>
  typeof reason === 'string' && Object.hasOwn(REFUSALS, reason);

/** The client-safe description of `reason` for a token sent as `parameter`. */
function describeRefusal(
  reason: VerifierReason,
  parameter: TokenParameter = 'subject_token',
): string {
  return REFUSALS[reason].describe(parameter);
}

/**
 * The `TesseraError` for a refused token: `invalid_request` (400), or `temporarily_unavailable`
 * (503) for the reasons that mean "retry". `detail` is log-only; it never holds the token.
 */
export function refuse(
  reason: VerifierReason,
  detail?: Record<string, unknown>,
  options: { cause?: unknown; parameter?: TokenParameter } = {},
): TesseraError {
  const refusal: Refusal = REFUSALS[reason];
  const make = refusal.unavailable ? temporarilyUnavailable : invalidRequest;
  return make(refusal.describe(options.parameter ?? 'subject_token'), {
    reason,
    ...(detail ? { detail } : {}),
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
}

/**
 * The same refusal, worded for the parameter the token came in and with `detail.token` saying
 * which one it was. Errors that are not a verifier's refusal pass through unchanged.
 */
export function forParameter(error: TesseraError, parameter: TokenParameter): TesseraError {
  if (parameter === 'subject_token' || !isVerifierReason(error.reason)) return error;
  return new TesseraError(error.code, error.status, describeRefusal(error.reason, parameter), {
    reason: error.reason,
    detail: { ...error.detail, token: 'actor' },
    cause: error.cause,
    ...(error.headers ? { headers: error.headers } : {}),
    ...(error.logLevel ? { logLevel: error.logLevel } : {}),
  });
}
