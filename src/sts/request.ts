import { z } from 'zod';
import { invalidRequest, unsupportedGrantType } from '../errors.js';
import type { ClientCertificate } from '../trust-policies/index.js';
import { parseStrictJson, StrictJsonError } from '../verifiers/index.js';

import {
  GRANT_TOKEN_EXCHANGE,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_ID_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_X509_SVID,
} from '../constants.js';

export {
  GRANT_TOKEN_EXCHANGE,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_ID_TOKEN,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_X509_SVID,
};

const SUBJECT_TOKEN_TYPES = [TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN] as const;
export const REQUESTED_TOKEN_TYPES = [
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_X509_SVID,
] as const;
export type RequestedTokenType = (typeof REQUESTED_TOKEN_TYPES)[number];

/** Parameters Tessera reads; any other is ignored (RFC 6749 §3.2) and never echoed back. */
const KNOWN_PARAMETERS = new Set([
  'grant_type',
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'audience',
  'resource',
  'scope',
  'csr',
  'duration_seconds',
  'actor_token',
  'actor_token_type',
]);
/** Tokens and CSRs are bounded by the body limit and their own parsers; other values are short. */
const LONG_PARAMETERS = new Set(['subject_token', 'actor_token', 'csr']);

/** The only parameters that may appear more than once (RFC 8693 §2.1 allows several audiences). */
const MULTI_VALUED = new Set(['audience']);
/** Beyond these sizes a parameter is garbage, not a typo; the token itself is capped by its verifier. */
const MAX_PARAMETER_LENGTH = 8192;

export interface TokenExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  requestedTokenType: RequestedTokenType;
  audience: string[];
  resource?: string;
  scope: string[];
  csr?: string;
  durationSeconds?: number;
  actorToken?: string;
  actorTokenType?: string;
  /** Not a body parameter: the caller's verified TLS client certificate, set by the endpoint under mTLS. */
  clientCert?: ClientCertificate;
}

type RawParameters = Map<string, string[]>;

function fromForm(body: string): RawParameters {
  const params = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(body)) {
    const values = params.get(name);
    if (values) values.push(value);
    else params.set(name, [value]);
  }
  return params;
}

function jsonRefusal(error: unknown): Error {
  const name = error instanceof StrictJsonError ? error.duplicateMember : undefined;
  if (name !== undefined) {
    return invalidRequest(
      KNOWN_PARAMETERS.has(name)
        ? `parameter ${name} is duplicated`
        : 'request body has a duplicated member',
      { reason: 'duplicated_parameter' },
    );
  }
  return invalidRequest('request body is not valid JSON', { reason: 'malformed_body' });
}

function fromJson(body: string): RawParameters {
  let parsed: unknown;
  try {
    // Strict: a duplicated member is a duplicated parameter, which JSON.parse would hide.
    parsed = parseStrictJson(body);
  } catch (error) {
    throw jsonRefusal(error);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalidRequest('request body must be a JSON object', { reason: 'malformed_body' });
  }
  const params = new Map<string, string[]>();
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value === 'string') params.set(name, [value]);
    else if (typeof value === 'number' && name === 'duration_seconds')
      params.set(name, [String(value)]);
    else if (
      Array.isArray(value) &&
      MULTI_VALUED.has(name) &&
      value.every((item) => typeof item === 'string')
    ) {
      params.set(name, value);
    } else if (KNOWN_PARAMETERS.has(name))
      throw invalidRequest(`parameter ${name} must be a string`, {
        reason: 'invalid_parameter_type',
      });
  }
  return params;
}

const durationSchema = z
  .string()
  .regex(/^[1-9]\d{0,5}$/, 'duration_seconds must be a positive whole number of seconds')
  .transform(Number);

function single(params: RawParameters, name: string): string | undefined {
  const values = params.get(name);
  if (!values) return undefined;
  const value = values[0] as string;
  return value === '' ? undefined : value;
}

function required(params: RawParameters, name: string): string {
  const value = single(params, name);
  if (value === undefined)
    throw invalidRequest(`parameter ${name} is required`, { reason: 'missing_parameter' });
  return value;
}

/** The body's parameters, by its media type, with duplicated and overlong ones refused. */
function parameters(body: string, contentType: string | undefined): RawParameters {
  const mediaType = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  let params: RawParameters;
  if (mediaType === 'application/x-www-form-urlencoded') params = fromForm(body);
  else if (mediaType === 'application/json') params = fromJson(body);
  else
    throw invalidRequest(
      'content type must be application/x-www-form-urlencoded or application/json',
      { reason: 'unsupported_content_type' },
    );

  for (const [name, values] of params) {
    if (!KNOWN_PARAMETERS.has(name)) continue;
    if (values.length > 1 && !MULTI_VALUED.has(name))
      throw invalidRequest(`parameter ${name} is duplicated`, { reason: 'duplicated_parameter' });
    if (!LONG_PARAMETERS.has(name) && values.some((value) => value.length > MAX_PARAMETER_LENGTH))
      throw invalidRequest(`parameter ${name} is too long`, { reason: 'parameter_too_long' });
  }
  return params;
}

function tokenTypes(params: RawParameters): {
  subjectTokenType: string;
  requestedTokenType: RequestedTokenType;
} {
  const subjectTokenType = required(params, 'subject_token_type');
  if (!(SUBJECT_TOKEN_TYPES as readonly string[]).includes(subjectTokenType)) {
    throw invalidRequest(`subject_token_type must be ${SUBJECT_TOKEN_TYPES.join(' or ')}`, {
      reason: 'unsupported_token_type',
    });
  }
  const requestedTokenType = single(params, 'requested_token_type') ?? TOKEN_TYPE_JWT;
  if (!(REQUESTED_TOKEN_TYPES as readonly string[]).includes(requestedTokenType)) {
    throw invalidRequest(
      `requested_token_type must be one of ${REQUESTED_TOKEN_TYPES.join(', ')}`,
      { reason: 'unsupported_token_type' },
    );
  }
  return { subjectTokenType, requestedTokenType: requestedTokenType as RequestedTokenType };
}

function actorParameters(params: RawParameters): { actorToken?: string; actorTokenType?: string } {
  const actorToken = single(params, 'actor_token');
  const actorTokenType = single(params, 'actor_token_type');
  if (actorToken !== undefined && actorTokenType === undefined)
    throw invalidRequest('actor_token_type is required with actor_token', {
      reason: 'actor_token_type_mismatch',
    });
  if (actorToken === undefined && actorTokenType !== undefined)
    throw invalidRequest('actor_token_type given without actor_token', {
      reason: 'actor_token_type_mismatch',
    });
  if (
    actorTokenType !== undefined &&
    !(SUBJECT_TOKEN_TYPES as readonly string[]).includes(actorTokenType)
  ) {
    throw invalidRequest(`actor_token_type must be ${SUBJECT_TOKEN_TYPES.join(' or ')}`, {
      reason: 'unsupported_token_type',
    });
  }
  return { actorToken, actorTokenType };
}

function durationParameter(params: RawParameters): number | undefined {
  const rawDuration = single(params, 'duration_seconds');
  if (rawDuration === undefined) return undefined;
  const parsed = durationSchema.safeParse(rawDuration);
  if (!parsed.success)
    throw invalidRequest('duration_seconds must be a positive whole number of seconds', {
      reason: 'invalid_duration',
    });
  return parsed.data;
}

function csrParameter(
  params: RawParameters,
  requestedTokenType: RequestedTokenType,
): string | undefined {
  const csr = single(params, 'csr');
  if (csr !== undefined && requestedTokenType !== TOKEN_TYPE_X509_SVID) {
    throw invalidRequest(`csr is only accepted with requested_token_type ${TOKEN_TYPE_X509_SVID}`, {
      reason: 'csr_not_allowed',
    });
  }
  if (csr === undefined && requestedTokenType === TOKEN_TYPE_X509_SVID)
    throw invalidRequest('csr is required for an x509-svid', { reason: 'csr_required' });
  return csr;
}

/**
 * Parse an RFC 8693 token-exchange request from a form or JSON body.
 * Rejects duplicated single-valued parameters (RFC 6749 §3.2: "MUST NOT be included more than once").
 *
 * @example parseTokenExchange('grant_type=…&subject_token=…', 'application/x-www-form-urlencoded')
 */
export function parseTokenExchange(
  body: string,
  contentType: string | undefined,
): TokenExchangeRequest {
  const params = parameters(body, contentType);
  const grantType = required(params, 'grant_type');
  if (grantType !== GRANT_TOKEN_EXCHANGE)
    throw unsupportedGrantType(`grant_type must be ${GRANT_TOKEN_EXCHANGE}`, {
      reason: 'unsupported_grant_type',
    });

  // A token file sent verbatim ends in a line break (google-auth-library sends the file as it is;
  // `tessera dev-token > file` writes one): exactly one is dropped, the strict form checks stay.
  const subjectToken = required(params, 'subject_token').replace(/\r?\n$/, '');
  const { subjectTokenType, requestedTokenType } = tokenTypes(params);
  const { actorToken, actorTokenType } = actorParameters(params);
  const durationSeconds = durationParameter(params);
  const csr = csrParameter(params, requestedTokenType);
  const audience = (params.get('audience') ?? []).filter((value) => value !== '');
  const scope = (single(params, 'scope') ?? '').split(' ').filter((value) => value !== '');

  return {
    subjectToken,
    subjectTokenType,
    requestedTokenType,
    audience: [...new Set(audience)],
    resource: single(params, 'resource'),
    scope: [...new Set(scope)],
    csr,
    durationSeconds,
    actorToken,
    actorTokenType,
  };
}
