import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clusterSchema } from '../../../src/config/index.js';
import { TesseraError } from '../../../src/errors.js';
import type { VerifierReason } from '../../../src/verifiers/index.js';
import { cacheTtlMs } from '../../../src/verifiers/tokenreview.js';
import {
  cachedIdentitySchema,
  identityFromReview,
  reviewStatusSchema,
} from '../../../src/verifiers/tokenreview-identity.js';

const FIXTURES = '/work/shared/fixtures/kubernetes/tokenreview';
/** The `status` of a TokenReview as the fixture files hold it (what the API server sent). */
interface FixtureStatus {
  user?: Record<string, unknown>;
  [member: string]: unknown;
}
const fixture = <T>(name: string): T =>
  JSON.parse(readFileSync(`${FIXTURES}/${name}.json`, 'utf8')) as T;
const docs = fixture<{ response: { status: FixtureStatus } }>(
  'kubernetes-website__bound-token-tokenreview',
);
const consul = fixture<{
  responses: Record<'invalidatedToken' | 'authenticated', { body: { status: FixtureStatus } }>;
}>('consul__captured-apiserver-responses');
const webhook = fixture<{
  responseFailure: { status: FixtureStatus };
  responseSuccess: { status: FixtureStatus };
}>('kubernetes-website__webhook-tokenreview-v1');

const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const cluster = clusterSchema.parse({
  name: 'kind',
  issuer: API_AUDIENCE,
  verify: 'tokenreview',
  kubeconfig: 'in-cluster',
});
const claims = {
  iss: API_AUDIENCE,
  sub: 'system:serviceaccount:default:my-sa',
  exp: 1_700_003_600,
  iat: 1_700_000_000,
  jti: 'from-claims',
  'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'my-sa' } },
};

describe('identityFromReview', () => {
  it('ok/docs-pod-bound-token', () => {
    const status = reviewStatusSchema.parse(docs.response.status);
    const identity = identityFromReview({ cluster, status, claims, audiences: [API_AUDIENCE] });
    expect(identity).toEqual({
      cluster: 'kind',
      iss: API_AUDIENCE,
      sub: 'system:serviceaccount:default:my-sa',
      aud: [API_AUDIENCE],
      namespace: 'default',
      serviceAccount: { name: 'my-sa', uid: 'f8b4161b-2e2b-11e9-86b7-2afc33b31a7e' },
      pod: { name: 'test-pod', uid: 'e87dbbd6-3d7e-45db-aafb-72b24627dff5' },
      node: { name: 'kind-control-plane', uid: '497e9d9a-47aa-4930-b0f6-9f2fb574c8c6' },
      claims,
      expiresAt: 1_700_003_600,
      jti: '7ee52be0-9045-4653-aa5e-0da57b8dccdc',
      verifiedBy: 'tokenreview',
    });
    expect(cachedIdentitySchema.parse(JSON.parse(JSON.stringify(identity)))).toEqual(identity);
  });

  // The review knows nothing of the cluster's mode: jwks+tokenreview is a composition (jwks-then-tokenreview.ts).
  it('ok/same-identity-whatever-the-mode-and-jti-from-claims', () => {
    const hybrid = clusterSchema.parse({ ...cluster, verify: 'jwks+tokenreview' });
    const status = reviewStatusSchema.parse({
      ...docs.response.status,
      user: { ...docs.response.status.user, extra: {} },
    });
    const identity = identityFromReview({
      cluster: hybrid,
      status,
      claims,
      audiences: [API_AUDIENCE],
    });
    expect([identity.verifiedBy, identity.jti, identity.pod, identity.node]).toEqual([
      'tokenreview',
      'from-claims',
      undefined,
      undefined,
    ]);
  });

  const refusals: Array<{
    name: string;
    status: unknown;
    claims?: Record<string, unknown>;
    audiences?: string[];
    description: string;
    reason: VerifierReason;
    detail?: Record<string, unknown>;
  }> = [
    {
      name: 'fail/invalidated-token',
      status: consul.responses.invalidatedToken.body.status,
      description: 'subject_token is not valid',
      reason: 'review_refused',
      detail: { reviewError: '[invalid bearer token, Token has been invalidated]' },
    },
    {
      name: 'fail/expired-credentials',
      status: webhook.responseFailure.status,
      description: 'subject_token is not valid',
      reason: 'review_refused',
      detail: { reviewError: 'Credentials are expired' },
    },
    {
      name: 'fail/not-a-service-account',
      status: webhook.responseSuccess.status,
      audiences: ['https://myserver.example.com'],
      description: 'subject_token is not a service-account token',
      reason: 'review_not_service_account',
    },
    {
      name: 'fail/api-server-not-audience-aware',
      status: consul.responses.authenticated.body.status,
      claims: { sub: 'system:serviceaccount:default:demo' },
      description: 'subject_token audience is not accepted',
      reason: 'review_audience_not_accepted',
    },
    {
      name: 'fail/audience-not-ours',
      status: docs.response.status,
      audiences: ['sts.example.com'],
      description: 'subject_token audience is not accepted',
      reason: 'review_audience_not_accepted',
    },
    {
      name: 'fail/sub-differs-from-reviewed-user',
      status: docs.response.status,
      claims: { sub: 'system:serviceaccount:kube-system:admin' },
      description: 'subject_token is not valid',
      reason: 'review_subject_mismatch',
      detail: { claim: 'sub' },
    },
    {
      name: 'fail/username-with-extra-colon',
      status: {
        ...docs.response.status,
        user: { username: 'system:serviceaccount:default:my-sa:extra' },
      },
      description: 'subject_token is not a service-account token',
      reason: 'review_not_service_account',
    },
  ];

  it.each(refusals)('$name', ({ status, description, reason, detail, ...input }) => {
    let caught: unknown;
    try {
      identityFromReview({
        cluster,
        status: reviewStatusSchema.parse(status),
        claims: input.claims ?? claims,
        audiences: input.audiences ?? [API_AUDIENCE],
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TesseraError);
    const error = caught as TesseraError;
    expect([error.status, error.code, error.description, error.reason, error.detail]).toEqual([
      400,
      'invalid_request',
      description,
      reason,
      { cluster: 'kind', ...detail },
    ]);
  });
});

describe('cacheTtlMs', () => {
  const now = 1_700_000_000_000;
  it.each([
    { name: 'ok/no-exp-uses-the-window', exp: undefined, window: 60, expected: 60_000 },
    {
      name: 'ok/long-lived-token-capped-at-window',
      exp: now / 1000 + 3600,
      window: 60,
      expected: 60_000,
    },
    { name: 'ok/short-remaining-life-wins', exp: now / 1000 + 20, window: 60, expected: 20_000 },
    {
      name: 'ok/jwks-plus-tokenreview-window',
      exp: now / 1000 + 3600,
      window: 10,
      expected: 10_000,
    },
    { name: 'fail/expired-token-not-cached', exp: now / 1000 - 1, window: 60, expected: 0 },
  ])('$name', ({ exp, window, expected }) => {
    expect(cacheTtlMs(exp, window, now)).toBe(expected);
  });
});
