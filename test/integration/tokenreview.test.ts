import { describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { createMemoryCache } from '../../src/cache/index.js';
import { TesseraError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/index.js';
import {
  createTokenReviewVerifier,
  type TokenReviewDeps,
} from '../../src/verifiers/tokenreview.js';
import type { KubeconfigOptions } from '../support/kube-apiserver.js';
import {
  issueReviewToken,
  REVIEW_AUDIENCE as AUDIENCE,
  reviewCluster,
  reviewVerifier,
  useKubeApiServer,
  withRawTokens,
  type ReviewVerifierOptions,
} from '../support/tokenreview.js';

/** TokenReview verification against the API server stand-in, through the real @kubernetes/client-node. */

const kube = useKubeApiServer();
const setup = (options: ReviewVerifierOptions = {}) => reviewVerifier(kube(), options);

const issue = (overrides: { audiences?: string[]; ttlSeconds?: number } = {}) =>
  issueReviewToken(kube(), { pod: 'orders-7d9f', node: 'node-a', ...overrides });

/** A JWT-shaped token the stand-in knows only through addToken (its signature is never checked here). */
const opaqueJwt = (claims: Record<string, unknown>) =>
  [{ alg: 'RS256', kid: 'k' }, claims]
    .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
    .join('.') + '.c2lnbmF0dXJl';

async function failure(promise: Promise<unknown>): Promise<TesseraError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(TesseraError);
  return error as TesseraError;
}

const reviewsOf = (token: string) =>
  kube()
    .reviews()
    .filter((review) => review.token === token);

describe('TokenReview verifier', () => {
  it('ok/authenticated-pod-bound-token', async () => {
    const { verifier } = setup();
    const token = await issue();
    const claims = decodeJwt(token) as Record<string, never> & {
      'kubernetes.io': Record<string, { uid: string }>;
    };
    const binding = claims['kubernetes.io'];
    expect(await verifier.verify(token)).toEqual({
      cluster: 'prod',
      iss: kube().issuer,
      sub: 'system:serviceaccount:production:order-service',
      aud: [AUDIENCE],
      namespace: 'production',
      serviceAccount: { name: 'order-service', uid: binding.serviceaccount!.uid },
      pod: { name: 'orders-7d9f', uid: binding.pod!.uid },
      node: { name: 'node-a', uid: binding.node!.uid },
      claims,
      expiresAt: claims.exp,
      jti: claims.jti,
      verifiedBy: 'tokenreview',
    });
    expect(reviewsOf(token)).toEqual([
      { token, audiences: [AUDIENCE], caller: kube().reviewerUsername },
    ]);
  });

  it('ok/client-certificate-credentials', async () => {
    const { verifier } = setup({ kubeconfig: { auth: 'client-cert' } });
    const token = await issue();
    expect((await verifier.verify(token)).sub).toBe(
      'system:serviceaccount:production:order-service',
    );
    expect(reviewsOf(token)[0]?.caller).toBe(kube().reviewerUsername);
  });

  it('ok/audiences-passed-and-intersected', async () => {
    const { verifier } = setup({ deps: { audiences: ['https://vault.example.com', AUDIENCE] } });
    const token = await issue({ audiences: [AUDIENCE, 'unrelated'] });
    expect((await verifier.verify(token)).aud).toEqual([AUDIENCE]);
    expect(reviewsOf(token)[0]?.audiences).toEqual(['https://vault.example.com', AUDIENCE]);
  });

  it('ok/ca-file-overrides-kubeconfig-ca', async () => {
    const { verifier } = setup({
      kubeconfig: { trust: 'other-ca' },
      cluster: { caFile: kube().caFile },
    });
    expect((await verifier.verify(await issue())).namespace).toBe('production');
  });

  it('ok/positive-result-cached-then-reviewed-again-after-window', async () => {
    const { verifier, advance } = setup();
    const token = await issue();
    await verifier.verify(token);
    advance(59_000);
    await verifier.verify(token);
    expect(reviewsOf(token)).toHaveLength(1);
    advance(2_000);
    await verifier.verify(token);
    expect(reviewsOf(token)).toHaveLength(2);
  });

  it('ok/cache-window-capped-by-token-life', async () => {
    const { verifier, advance } = setup();
    const token = await issue({ ttlSeconds: 20 });
    await verifier.verify(token);
    advance(21_000);
    await verifier.verify(token);
    expect(reviewsOf(token)).toHaveLength(2);
  });

  it('ok/concurrent-verifies-share-one-review', async () => {
    const { verifier } = setup();
    const token = await issue();
    const identities = await Promise.all(Array.from({ length: 10 }, () => verifier.verify(token)));
    expect(new Set(identities.map((identity) => identity.sub)).size).toBe(1);
    expect(reviewsOf(token)).toHaveLength(1);
  });

  it('ok/two-verifiers-share-the-cache', async () => {
    const first = setup();
    const second = withRawTokens(
      createTokenReviewVerifier(reviewCluster(kube()), {
        cache: first.cache,
        logger: createLogger({ level: 'silent' }),
        audiences: [AUDIENCE],
      }),
    );
    const token = await issue();
    await first.verifier.verify(token);
    await second.verify(token);
    expect(reviewsOf(token)).toHaveLength(1);
  });

  it('fail/unauthenticated-refusal-reused-for-10s (a token replayed in a loop costs one review per 10 s)', async () => {
    const { verifier, metrics, advance } = setup();
    const token = opaqueJwt({
      iss: kube().issuer,
      sub: 'system:serviceaccount:production:order-service',
    });
    const attempt = async () => {
      const error = await failure(verifier.verify(token));
      expect([error.status, error.code, error.description]).toEqual([
        400,
        'invalid_request',
        'subject_token is not valid',
      ]);
      return error;
    };
    const first = await attempt();
    expect(first.reason).toBe('review_refused');
    expect(first.detail).toEqual({
      cluster: 'prod',
      reviewError: expect.stringMatching(/^\[invalid bearer token/) as unknown,
    });
    advance(9_000);
    const cached = await attempt();
    expect([cached.reason, cached.detail]).toEqual([
      'review_refused',
      { ...first.detail, cached: true },
    ]);
    expect(reviewsOf(token)).toHaveLength(1);
    advance(1_001);
    await attempt();
    expect(reviewsOf(token)).toHaveLength(2);
    expect((await metrics.tokenReviews.get()).values).toEqual([
      expect.objectContaining({ labels: { cluster: 'prod', result: 'unauthenticated' }, value: 2 }),
    ]);
  });

  it('fail/wrong-audience', async () => {
    const { verifier } = setup();
    const error = await failure(
      verifier.verify(await issue({ audiences: ['https://other.example.com'] })),
    );
    // The API server itself refuses a token not meant for the audiences asked about.
    expect([error.status, error.code, error.reason]).toEqual([
      400,
      'invalid_request',
      'review_refused',
    ]);
  });

  it('fail/not-a-service-account', async () => {
    const { verifier } = setup();
    const token = opaqueJwt({ iss: kube().issuer, sub: 'alice' });
    kube().addToken(token, { username: 'alice', groups: ['system:authenticated'] });
    const error = await failure(verifier.verify(token));
    expect([error.status, error.description, error.reason]).toEqual([
      400,
      'subject_token is not a service-account token',
      'review_not_service_account',
    ]);
  });

  it('fail/sub-disagrees-with-reviewed-user', async () => {
    const { verifier } = setup();
    const token = opaqueJwt({ iss: kube().issuer, sub: 'system:serviceaccount:kube-system:admin' });
    kube().addToken(token, { username: 'system:serviceaccount:production:order-service' });
    const error = await failure(verifier.verify(token));
    expect([error.status, error.code, error.reason]).toEqual([
      400,
      'invalid_request',
      'review_subject_mismatch',
    ]);
  });

  it('fail/malformed-token-never-reviewed', async () => {
    const { verifier } = setup();
    const before = kube().reviews().length;
    const error = await failure(verifier.verify('not-a-jwt'));
    expect([error.status, error.code, error.reason]).toEqual([
      400,
      'invalid_request',
      'malformed_token',
    ]);
    expect(kube().reviews()).toHaveLength(before);
  });

  it.each([
    { name: 'verify: tokenreview', verify: 'tokenreview', window: 60_000 },
    { name: 'verify: jwks+tokenreview', verify: 'jwks+tokenreview', window: 10_000 },
  ] as const)('fail/pod-deleted-after-issuance ($name)', async ({ verify, window }) => {
    // jwks+tokenreview also fetches the keys from the stand-in's discovery document.
    const { verifier, advance } = setup({ cluster: { verify, caFile: kube().caFile } });
    const token = await issue();
    expect((await verifier.verify(token)).verifiedBy).toBe(verify);
    kube().revoke(token);
    advance(window - 1000);
    expect((await verifier.verify(token)).pod?.name).toBe('orders-7d9f');
    advance(2000);
    const error = await failure(verifier.verify(token));
    expect([error.status, error.code]).toEqual([400, 'invalid_request']);
    expect(error.reason).toBe('review_refused');
    expect(error.detail).toMatchObject({
      cluster: 'prod',
      reviewError: '[invalid bearer token, Token has been invalidated]',
    });
  });
});

describe('TokenReview verifier: API server trouble is 503, never 500, and never logs the token', () => {
  const cases: Array<{
    name: string;
    kubeconfig?: KubeconfigOptions;
    arrange?: () => void;
    deps?: Partial<TokenReviewDeps>;
    logged: Record<string, unknown>;
    message: RegExp;
  }> = [
    {
      name: 'fail/api-down',
      arrange: () => kube().setDown(true),
      logged: { level: 40, failure: 'network', cluster: 'prod' },
      message: /failed \(network\)/,
    },
    {
      name: 'fail/timeout',
      arrange: () => kube().setDelay(1500),
      deps: { timeoutMs: 200 },
      logged: { level: 40, failure: 'timeout', reason: 'no answer within 200 ms' },
      message: /failed \(timeout\)/,
    },
    {
      name: 'fail/wrong-credentials',
      kubeconfig: { token: 'wrong-reviewer-credential' },
      logged: { level: 50, status: 401, reason: 'Unauthorized', cluster: 'prod' },
      message: /did not accept the broker's credentials \(401\)/,
    },
    {
      name: 'fail/missing-rbac',
      arrange: () => kube().setForbidden(true),
      logged: { level: 50, status: 403, reason: 'Forbidden' },
      message: /system:auth-delegator/,
    },
    {
      name: 'fail/api-server-error',
      arrange: () => kube().failWith(500),
      logged: { level: 40, status: 500, reason: 'InternalError' },
      message: /failed \(http\)/,
    },
    {
      name: 'fail/untrusted-server-certificate',
      kubeconfig: { trust: 'other-ca' },
      logged: { level: 40, failure: 'network' },
      message: /failed \(network\)/,
    },
  ];

  it.each(cases)('$name', async ({ kubeconfig, arrange, deps, logged, message }) => {
    const { verifier, lines, metrics } = setup({
      ...(kubeconfig ? { kubeconfig } : {}),
      ...(deps ? { deps } : {}),
    });
    const token = await issue();
    arrange?.();
    const error = await failure(verifier.verify(token));
    expect([error.status, error.code]).toEqual([503, 'temporarily_unavailable']);
    expect([error.reason, error.description]).toEqual([
      'review_unavailable',
      'the cluster API server cannot verify tokens right now; retry later',
    ]);
    const line = lines.find((entry) => message.test(String(entry.msg)));
    expect(line).toMatchObject({ ...logged, module: 'tokenreview', server: kube().url });
    for (const entry of lines) {
      expect(JSON.stringify(entry)).not.toContain(token);
      expect(JSON.stringify(entry)).not.toContain('wrong-reviewer-credential');
    }
    const results = (await metrics.tokenReviews.get()).values.map((sample) => sample.labels.result);
    expect(results).toEqual([logged.failure === 'timeout' ? 'timeout' : 'error']);
    // Negative outcomes are not cached: once the API server is healthy again, the token passes.
    kube().setDown(false);
    kube().setDelay(0);
    kube().setForbidden(false);
    kube().failWith(undefined);
    if (!kubeconfig) expect((await verifier.verify(token)).namespace).toBe('production');
  });
});

describe('TokenReview verifier: configuration', () => {
  it('fail/missing-kubeconfig-file-at-start', () => {
    const cluster = reviewCluster(kube(), { kubeconfig: '/nonexistent/kubeconfig' });
    expect(() =>
      createTokenReviewVerifier(cluster, {
        cache: createMemoryCache(),
        logger: createLogger({ level: 'silent' }),
        audiences: [AUDIENCE],
      }),
    ).toThrow(/cluster prod: cannot load kubeconfig \/nonexistent\/kubeconfig/);
  });

  it.skipIf(Boolean(process.env.KUBERNETES_SERVICE_HOST))('fail/in-cluster-outside-a-pod', () => {
    const cluster = reviewCluster(kube(), { kubeconfig: 'in-cluster' });
    expect(() =>
      createTokenReviewVerifier(cluster, {
        cache: createMemoryCache(),
        logger: createLogger({ level: 'silent' }),
        audiences: [AUDIENCE],
      }),
    ).toThrow(
      'cluster prod: kubeconfig in-cluster, but the broker is not running in a pod (KUBERNETES_SERVICE_HOST is unset)',
    );
  });
});
