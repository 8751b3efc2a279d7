import { describe, expect, test } from 'vitest';
import { composeJwksThenTokenReview } from '../../../src/verifiers/jwks-then-tokenreview.js';
import {
  parseToken,
  type ClusterVerifier,
  type WorkloadIdentity,
} from '../../../src/verifiers/index.js';
import { refuse } from '../../../src/verifiers/refusals.js';
import { cluster, refusal } from './helpers.js';

/**
 * `jwks+tokenreview` is the JWKS verifier, then the TokenReview verifier. Both are stand-ins
 * here: a review vouching for another subject than the verified token cannot be produced by a
 * real API server (the review already checks the token's `sub`), and the composition must
 * still refuse it. The real pair runs in test/integration/tokenreview*.test.ts.
 */
const prod = cluster({
  name: 'prod',
  issuer: 'https://oidc.example.com',
  verify: 'jwks+tokenreview',
  kubeconfig: 'in-cluster',
});
const SUB = 'system:serviceaccount:production:orders';
const identity = (overrides: Partial<WorkloadIdentity>): WorkloadIdentity => ({
  cluster: 'prod',
  iss: prod.issuer,
  sub: SUB,
  aud: ['sts.example.com'],
  namespace: 'production',
  claims: {},
  verifiedBy: 'jwks',
  ...overrides,
});

function stage(answer: () => Promise<WorkloadIdentity>) {
  const calls: string[] = [];
  const verifier: ClusterVerifier = {
    verify: (token) => {
      calls.push(token.jws.token);
      return answer();
    },
    warm: () => Promise.resolve(),
    status: () => ({ cluster: 'prod', issuer: prod.issuer, ready: true, stale: false }),
    close: () => Promise.resolve(),
  };
  return { verifier, calls };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const token = parseToken(
  `${b64({ alg: 'RS256', kid: 'k' })}.${b64({ iss: prod.issuer, sub: SUB })}.c2ln`,
);

describe('jwks+tokenreview composition', () => {
  test('ok/the-jwks-identity-once-the-review-vouches-for-the-same-subject', async () => {
    const jwks = stage(() => Promise.resolve(identity({ pod: { name: 'orders-1' } })));
    const review = stage(() => Promise.resolve(identity({ verifiedBy: 'tokenreview' })));
    const verified = await composeJwksThenTokenReview(prod, jwks.verifier, review.verifier).verify(
      token,
    );
    expect([
      verified.verifiedBy,
      verified.pod?.name,
      jwks.calls.length,
      review.calls.length,
    ]).toEqual(['jwks+tokenreview', 'orders-1', 1, 1]);
  });

  test('fail/a-token-the-jwks-verifier-refuses-never-reaches-the-review', async () => {
    const jwks = stage(() => Promise.reject(refuse('bad_signature')));
    const review = stage(() => Promise.resolve(identity({ verifiedBy: 'tokenreview' })));
    const error = await refusal(
      composeJwksThenTokenReview(prod, jwks.verifier, review.verifier).verify(token),
    );
    expect([error.status, error.reason, review.calls.length]).toEqual([400, 'bad_signature', 0]);
  });

  test('fail/a-review-of-another-subject-is-refused', async () => {
    const jwks = stage(() => Promise.resolve(identity({})));
    const review = stage(() =>
      Promise.resolve(
        identity({ sub: 'system:serviceaccount:kube-system:admin', verifiedBy: 'tokenreview' }),
      ),
    );
    const error = await refusal(
      composeJwksThenTokenReview(prod, jwks.verifier, review.verifier).verify(token),
    );
    expect([error.status, error.code, error.description, error.reason]).toEqual([
      400,
      'invalid_request',
      'subject_token is not valid',
      'review_subject_mismatch',
    ]);
  });

  test('fail/a-review-the-api-server-cannot-answer-is-503', async () => {
    const jwks = stage(() => Promise.resolve(identity({})));
    const review = stage(() => Promise.reject(refuse('review_unavailable')));
    const error = await refusal(
      composeJwksThenTokenReview(prod, jwks.verifier, review.verifier).verify(token),
    );
    expect([error.status, error.code, error.reason]).toEqual([
      503,
      'temporarily_unavailable',
      'review_unavailable',
    ]);
  });
});
