import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { clusterSchema } from '../../src/config/index.js';
import { isTesseraError } from '../../src/errors.js';
import type { SubjectTokenVerifier } from '../../src/verifiers/index.js';
import {
  identityFromReview,
  reviewStatusSchema,
} from '../../src/verifiers/tokenreview-identity.js';
import { projectedClaims, startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { cluster, makeVerifier, outcome } from '../unit/verifiers/helpers.js';

/**
 * A cluster-signed token is trusted only in the projected-token shape policies rely on
 * (`kubernetes.io.namespace` and `.serviceaccount.name` strings, `sub` naming the same service
 * account) and only when it was not minted to outlive the cluster's `maxTokenLifetime`: both
 * are refused with 400 before any policy runs, whichever way the cluster verifies tokens.
 */

let idp: OidcIssuer;
let verifier: SubjectTokenVerifier;
let shortLived: SubjectTokenVerifier;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  idp = await startOidcIssuer({ path: '/shape' });
  ({ verifier } = makeVerifier([cluster({ issuer: idp.issuer, caFile: idp.caFile })]));
  ({ verifier: shortLived } = makeVerifier([
    cluster({ issuer: idp.issuer, caFile: idp.caFile, maxTokenLifetime: 3600 }),
  ]));
});
afterAll(async () => {
  await verifier.close();
  await shortLived.close();
  await idp.close();
});

const SHAPE = '400 invalid_request: subject_token is not a projected service-account token';
const LIFETIME =
  "400 invalid_request: subject_token lifetime exceeds the cluster's maxTokenLifetime";

/** A genuine projected token's claims with `kubernetes.io` (or its parts) replaced. */
function claims(
  overrides: Record<string, unknown> = {},
  k8s: Record<string, unknown> = {},
): Record<string, unknown> {
  const base = projectedClaims(idp.issuer, { namespace: 'prod', serviceAccount: 'api' });
  const merged = { ...(base['kubernetes.io'] as Record<string, unknown>), ...k8s };
  for (const [key, value] of Object.entries(merged)) if (value === undefined) delete merged[key];
  return { ...base, 'kubernetes.io': merged, ...overrides };
}

describe('projected-token shape', () => {
  const cases: Array<[string, () => Record<string, unknown>, string]> = [
    ['ok/projected-token', () => claims(), 'ok'],
    ['fail/no-kubernetes-io-object', () => claims({ 'kubernetes.io': undefined }), SHAPE],
    ['fail/kubernetes-io-is-a-string', () => claims({ 'kubernetes.io': 'prod' }), SHAPE],
    ['fail/namespace-is-an-array', () => claims({}, { namespace: ['prod', 'kube-system'] }), SHAPE],
    ['fail/namespace-is-a-number', () => claims({}, { namespace: 7 }), SHAPE],
    ['fail/namespace-missing', () => claims({}, { namespace: undefined }), SHAPE],
    [
      'fail/namespace-empty',
      () => claims({ sub: 'system:serviceaccount::api' }, { namespace: '' }),
      SHAPE,
    ],
    ['fail/serviceaccount-missing', () => claims({}, { serviceaccount: undefined }), SHAPE],
    [
      'fail/serviceaccount-name-is-a-number',
      () => claims({}, { serviceaccount: { name: 1, uid: 'u' } }),
      SHAPE,
    ],
    [
      'fail/serviceaccount-uid-is-an-object',
      () => claims({}, { serviceaccount: { name: 'api', uid: { x: 1 } } }),
      SHAPE,
    ],
    ['fail/pod-is-a-string', () => claims({}, { pod: 'api-1' }), SHAPE],
    [
      'fail/pod-name-is-an-array',
      () => claims({}, { pod: { name: ['debug-1'], uid: 'u' } }),
      SHAPE,
    ],
    [
      'fail/sub-of-another-service-account',
      () => claims({ sub: 'system:serviceaccount:prod:admin' }),
      SHAPE,
    ],
    [
      'fail/sub-of-another-namespace',
      () => claims({ sub: 'system:serviceaccount:kube-system:api' }),
      SHAPE,
    ],
    ['fail/sub-not-a-service-account', () => claims({ sub: 'alice' }), SHAPE],
    ['fail/sub-with-extra-field', () => claims({ sub: 'system:serviceaccount:prod:api:x' }), SHAPE],
  ];
  test.each(cases)('%s', async (_name, make, expected) => {
    expect(await outcome(verifier.verify(await idp.sign(make())))).toBe(expected);
  });
});

describe('subject-token lifetime', () => {
  const cases: Array<[string, () => Record<string, unknown>, 'default' | 'short', string]> = [
    ['ok/one-hour-token', () => claims({ iat: now(), exp: now() + 3600 }), 'default', 'ok'],
    [
      'ok/24h-token-at-the-default',
      () => claims({ iat: now(), exp: now() + 86_400 }),
      'default',
      'ok',
    ],
    ['fail/exp-1e20', () => claims({ exp: 1e20 }), 'default', LIFETIME],
    [
      'fail/one-year-token',
      () => claims({ iat: now(), exp: now() + 365 * 86_400 }),
      'default',
      LIFETIME,
    ],
    [
      'fail/24h-and-a-second',
      () => claims({ iat: now(), exp: now() + 86_401 }),
      'default',
      LIFETIME,
    ],
    ['fail/exp-1e20-without-iat', () => claims({ iat: undefined, exp: 1e20 }), 'default', LIFETIME],
    [
      'ok/no-iat-short-remaining-life',
      () => claims({ iat: undefined, exp: now() + 600 }),
      'default',
      'ok',
    ],
    ['ok/cluster-max-lifetime-1h', () => claims({ iat: now(), exp: now() + 3600 }), 'short', 'ok'],
    [
      'fail/cluster-max-lifetime-1h',
      () => claims({ iat: now(), exp: now() + 3601 }),
      'short',
      LIFETIME,
    ],
    [
      'fail/no-iat-remaining-life-above-cluster-max',
      () => claims({ iat: undefined, exp: now() + 7200 }),
      'short',
      LIFETIME,
    ],
  ];
  test.each(cases)('%s', async (_name, make, which, expected) => {
    const target = which === 'short' ? shortLived : verifier;
    expect(await outcome(target.verify(await idp.sign(make())))).toBe(expected);
  });
});

describe('TokenReview-verified identities keep the same rules', () => {
  const ISSUER = 'https://kubernetes.default.svc.cluster.local';
  const reviewCluster = clusterSchema.parse({
    name: 'kind',
    issuer: ISSUER,
    verify: 'tokenreview',
    kubeconfig: 'in-cluster',
    maxTokenLifetime: '1h',
  });
  const status = reviewStatusSchema.parse({
    authenticated: true,
    audiences: ['sts.example.com'],
    user: { username: 'system:serviceaccount:prod:api', uid: 'u' },
  });
  const t = 1_800_000_000;
  const good = {
    iss: ISSUER,
    sub: 'system:serviceaccount:prod:api',
    iat: t,
    exp: t + 600,
    'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'api' } },
  };
  const review = (claimSet: Record<string, unknown>) => {
    try {
      return identityFromReview({
        cluster: reviewCluster,
        status,
        claims: claimSet,
        audiences: ['sts.example.com'],
        nowSeconds: t,
      }).namespace;
    } catch (error) {
      if (!isTesseraError(error)) throw error;
      return `${error.status} ${error.code}: ${error.description} (${String(error.reason)} ${String(error.detail?.claim)})`;
    }
  };
  const cases: Array<[string, Record<string, unknown>, string | undefined]> = [
    ['ok/projected-token-reviewed', good, 'prod'],
    [
      'fail/reviewed-token-without-kubernetes-io',
      { iss: ISSUER, sub: 'system:serviceaccount:prod:api', iat: t, exp: t + 600 },
      '400 invalid_request: subject_token is not a projected service-account token (not_projected_token kubernetes.io)',
    ],
    [
      'fail/reviewed-token-claims-of-another-namespace',
      { ...good, 'kubernetes.io': { namespace: 'kube-system', serviceaccount: { name: 'api' } } },
      '400 invalid_request: subject_token is not a projected service-account token (not_projected_token sub)',
    ],
    [
      'fail/reviewed-token-namespace-an-array',
      { ...good, 'kubernetes.io': { namespace: ['prod'], serviceaccount: { name: 'api' } } },
      '400 invalid_request: subject_token is not a projected service-account token (not_projected_token kubernetes.io.namespace)',
    ],
    [
      'fail/reviewed-token-without-sub',
      { ...good, sub: undefined },
      '400 invalid_request: subject_token is not valid (review_subject_mismatch sub)',
    ],
    [
      'fail/reviewed-token-above-max-lifetime',
      { ...good, exp: t + 7200 },
      "400 invalid_request: subject_token lifetime exceeds the cluster's maxTokenLifetime (lifetime_too_long iat)",
    ],
    [
      'fail/reviewed-legacy-token-without-exp',
      { ...good, exp: undefined },
      '400 invalid_request: subject_token has no expiry (missing_expiry exp)',
    ],
  ];
  test.each(cases)('%s', (_name, claimSet, expected) => {
    expect(review(claimSet)).toBe(expected);
  });
});
