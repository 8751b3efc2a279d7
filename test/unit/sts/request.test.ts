import { describe, expect, it } from 'vitest';
import { isTesseraError } from '../../../src/errors.js';
import { parseTokenExchange } from '../../../src/sts/request.js';

const FORM = 'application/x-www-form-urlencoded';
const base = {
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: 'a.b.c',
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
};
const form = (params: Array<[string, string]>): string => new URLSearchParams(params).toString();
const withBase = (...extra: Array<[string, string]>): string =>
  form([...Object.entries(base), ...extra]);

type Refusal = { code: string; reason: string | undefined; status: number; description: string };

function refusal(body: string, contentType: string | undefined): Refusal {
  try {
    parseTokenExchange(body, contentType);
  } catch (error) {
    if (isTesseraError(error))
      return {
        code: error.code,
        reason: error.reason,
        status: error.status,
        description: error.description,
      };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('parseTokenExchange', () => {
  it('ok/minimal-form: defaults to a JWT, no audience, no scope', () => {
    expect(parseTokenExchange(withBase(), FORM)).toEqual({
      subjectToken: 'a.b.c',
      subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt',
      requestedTokenType: 'urn:ietf:params:oauth:token-type:jwt',
      audience: [],
      resource: undefined,
      scope: [],
      csr: undefined,
      durationSeconds: undefined,
      actorToken: undefined,
      actorTokenType: undefined,
    });
  });

  it.each([
    ['ok/subject-token-final-newline-dropped', 'a.b.c\n', 'a.b.c'],
    ['ok/subject-token-final-crlf-dropped', 'a.b.c\r\n', 'a.b.c'],
    ['ok/subject-token-only-one-line-break-dropped', 'a.b.c\n\n', 'a.b.c\n'],
    ['ok/subject-token-other-whitespace-kept', ' a.b.c \n', ' a.b.c '],
  ])('%s', (_name, sent, parsed) => {
    expect(
      parseTokenExchange(form([...Object.entries({ ...base, subject_token: sent })]), FORM)
        .subjectToken,
    ).toBe(parsed);
  });

  it('ok/repeated-audience-and-scope-list', () => {
    const parsed = parseTokenExchange(
      withBase(
        ['audience', 'a'],
        ['audience', 'b'],
        ['audience', 'a'],
        ['scope', 'read  write'],
        ['resource', 'urn:tessera:role:demo'],
      ),
      `${FORM}; charset=utf-8`,
    );
    expect(parsed.audience).toEqual(['a', 'b']);
    expect(parsed.scope).toEqual(['read', 'write']);
    expect(parsed.resource).toBe('urn:tessera:role:demo');
  });

  it('ok/json-body-with-audience-array-and-numeric-duration', () => {
    const parsed = parseTokenExchange(
      JSON.stringify({ ...base, audience: ['x', 'y'], duration_seconds: 900 }),
      'application/json',
    );
    expect(parsed.audience).toEqual(['x', 'y']);
    expect(parsed.durationSeconds).toBe(900);
  });

  it('ok/unknown-parameters-are-ignored-whatever-their-name-or-count', () => {
    const longName = 'n'.repeat(60_000);
    const parsed = parseTokenExchange(
      withBase([longName, 'a'], [longName, 'b'], ['client_id', 'pod'], ['client_id', 'pod']),
      FORM,
    );
    expect(parsed.subjectToken).toBe('a.b.c');
    const json = parseTokenExchange(
      JSON.stringify({ ...base, [longName]: { nested: true }, client_id: 7 }),
      'application/json',
    );
    expect(json.subjectToken).toBe('a.b.c');
  });

  it('ok/x509-with-csr', () => {
    const parsed = parseTokenExchange(
      withBase(
        ['requested_token_type', 'urn:tessera:params:oauth:token-type:x509-svid'],
        ['csr', 'PEM'],
      ),
      FORM,
    );
    expect(parsed.csr).toBe('PEM');
  });

  const failures: Array<[string, string, string | undefined, Refusal]> = [
    [
      'fail/no-grant-type',
      form([['subject_token', 'x']]),
      FORM,
      {
        code: 'invalid_request',
        reason: 'missing_parameter',
        status: 400,
        description: 'parameter grant_type is required',
      },
    ],
    [
      'fail/other-grant',
      form([['grant_type', 'client_credentials']]),
      FORM,
      {
        code: 'unsupported_grant_type',
        reason: 'unsupported_grant_type',
        status: 400,
        description: 'grant_type must be urn:ietf:params:oauth:grant-type:token-exchange',
      },
    ],
    [
      'fail/duplicate-subject-token',
      withBase(['subject_token', 'other']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'duplicated_parameter',
        status: 400,
        description: 'parameter subject_token is duplicated',
      },
    ],
    [
      'fail/duplicate-resource',
      withBase(['resource', 'a'], ['resource', 'b']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'duplicated_parameter',
        status: 400,
        description: 'parameter resource is duplicated',
      },
    ],
    [
      'fail/duplicate-grant-type',
      form([
        ['grant_type', base.grant_type],
        ['grant_type', base.grant_type],
      ]),
      FORM,
      {
        code: 'invalid_request',
        reason: 'duplicated_parameter',
        status: 400,
        description: 'parameter grant_type is duplicated',
      },
    ],
    [
      'fail/missing-subject-token-type',
      form([
        ['grant_type', base.grant_type],
        ['subject_token', 'x'],
      ]),
      FORM,
      {
        code: 'invalid_request',
        reason: 'missing_parameter',
        status: 400,
        description: 'parameter subject_token_type is required',
      },
    ],
    [
      'fail/saml-subject',
      form([
        ['grant_type', base.grant_type],
        ['subject_token', 'x'],
        ['subject_token_type', 'urn:ietf:params:oauth:token-type:saml2'],
      ]),
      FORM,
      {
        code: 'invalid_request',
        reason: 'unsupported_token_type',
        status: 400,
        description:
          'subject_token_type must be urn:ietf:params:oauth:token-type:jwt or urn:ietf:params:oauth:token-type:id_token',
      },
    ],
    [
      'fail/unknown-requested-type',
      withBase(['requested_token_type', 'urn:ietf:params:oauth:token-type:saml1']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'unsupported_token_type',
        status: 400,
        description:
          'requested_token_type must be one of urn:ietf:params:oauth:token-type:jwt, urn:ietf:params:oauth:token-type:access_token, urn:tessera:params:oauth:token-type:x509-svid',
      },
    ],
    [
      'fail/duration-not-a-number',
      withBase(['duration_seconds', '15m']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'invalid_duration',
        status: 400,
        description: 'duration_seconds must be a positive whole number of seconds',
      },
    ],
    [
      'fail/duration-zero',
      withBase(['duration_seconds', '0']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'invalid_duration',
        status: 400,
        description: 'duration_seconds must be a positive whole number of seconds',
      },
    ],
    [
      'fail/csr-without-x509',
      withBase(['csr', 'PEM']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'csr_not_allowed',
        status: 400,
        description:
          'csr is only accepted with requested_token_type urn:tessera:params:oauth:token-type:x509-svid',
      },
    ],
    [
      'fail/x509-without-csr',
      withBase(['requested_token_type', 'urn:tessera:params:oauth:token-type:x509-svid']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'csr_required',
        status: 400,
        description: 'csr is required for an x509-svid',
      },
    ],
    [
      'fail/actor-without-type',
      withBase(['actor_token', 'a.b.c']),
      FORM,
      {
        code: 'invalid_request',
        reason: 'actor_token_type_mismatch',
        status: 400,
        description: 'actor_token_type is required with actor_token',
      },
    ],
    [
      'fail/text-plain',
      withBase(),
      'text/plain',
      {
        code: 'invalid_request',
        reason: 'unsupported_content_type',
        status: 400,
        description: 'content type must be application/x-www-form-urlencoded or application/json',
      },
    ],
    [
      'fail/no-content-type',
      withBase(),
      undefined,
      {
        code: 'invalid_request',
        reason: 'unsupported_content_type',
        status: 400,
        description: 'content type must be application/x-www-form-urlencoded or application/json',
      },
    ],
    [
      'fail/json-garbage',
      '{"grant_type":',
      'application/json',
      {
        code: 'invalid_request',
        reason: 'malformed_body',
        status: 400,
        description: 'request body is not valid JSON',
      },
    ],
    [
      'fail/json-duplicate-member',
      `{"grant_type":"${base.grant_type}","subject_token":"a","subject_token":"b"}`,
      'application/json',
      {
        code: 'invalid_request',
        reason: 'duplicated_parameter',
        status: 400,
        description: 'parameter subject_token is duplicated',
      },
    ],
    [
      'fail/json-trailing-garbage',
      `${JSON.stringify(base)} x`,
      'application/json',
      {
        code: 'invalid_request',
        reason: 'malformed_body',
        status: 400,
        description: 'request body is not valid JSON',
      },
    ],
    [
      'fail/json-duplicate-unknown-member-is-not-echoed',
      `{"grant_type":"${base.grant_type}","${'x'.repeat(5000)}":1,"${'x'.repeat(5000)}":2}`,
      'application/json',
      {
        code: 'invalid_request',
        reason: 'duplicated_parameter',
        status: 400,
        description: 'request body has a duplicated member',
      },
    ],
    [
      'fail/json-array',
      '[]',
      'application/json',
      {
        code: 'invalid_request',
        reason: 'malformed_body',
        status: 400,
        description: 'request body must be a JSON object',
      },
    ],
    [
      'fail/json-nested-object',
      JSON.stringify({ ...base, resource: { name: 'x' } }),
      'application/json',
      {
        code: 'invalid_request',
        reason: 'invalid_parameter_type',
        status: 400,
        description: 'parameter resource must be a string',
      },
    ],
    [
      'fail/json-subject-token-array',
      JSON.stringify({ ...base, subject_token: ['a', 'b'] }),
      'application/json',
      {
        code: 'invalid_request',
        reason: 'invalid_parameter_type',
        status: 400,
        description: 'parameter subject_token must be a string',
      },
    ],
    [
      'fail/overlong-parameter',
      withBase(['resource', 'r'.repeat(9000)]),
      FORM,
      {
        code: 'invalid_request',
        reason: 'parameter_too_long',
        status: 400,
        description: 'parameter resource is too long',
      },
    ],
  ];
  it.each(failures)('%s', (_name, body, contentType, expected) => {
    expect(refusal(body, contentType)).toEqual(expected);
  });
});
