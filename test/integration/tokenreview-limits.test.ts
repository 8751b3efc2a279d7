import { describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../src/cache/index.js';
import { issueReviewToken, reviewVerifier, useKubeApiServer } from '../support/tokenreview.js';

/**
 * Any well-formed JWT naming a TokenReview cluster costs an API-server call, so the calls in
 * flight are bounded per cluster: beyond the limit a request is answered 503 at once, never queued.
 */
const kube = useKubeApiServer();

const setup = (maxConcurrentReviews?: number) =>
  reviewVerifier(kube(), {
    cache: createMemoryCache(),
    ...(maxConcurrentReviews ? { deps: { maxConcurrentReviews } } : {}),
  });
const issue = (pod: string) => issueReviewToken(kube(), { serviceAccount: 'orders', pod });
const outcome = (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: { status: number; code: string; description: string; headers?: unknown }) =>
      `${error.status} ${error.code}: ${error.description}${error.headers ? ' (with headers)' : ''}`,
  );

describe('TokenReview concurrency limit', () => {
  it('fail/reviews-beyond-the-limit-are-503-at-once-and-never-reach-the-api-server', async () => {
    const { verifier, lines, metrics } = setup(2);
    const tokens = await Promise.all(
      ['a', 'b', 'c', 'd', 'e'].map((pod) => issue(`orders-${pod}`)),
    );
    const reviewedBefore = kube().reviews().length;
    kube().setDelay(300); // keeps the first reviews in flight while the others arrive
    const results = await Promise.all(tokens.map((token) => outcome(verifier.verify(token))));
    expect(results).toEqual([
      'ok',
      'ok',
      ...Array<string>(3).fill(
        '503 temporarily_unavailable: too many subject tokens are being verified for this cluster; retry later',
      ),
    ]);
    expect(kube().reviews().length - reviewedBefore).toBe(2);
    expect(
      (await metrics.tokenReviews.get()).values
        .map(({ labels, value }) => [labels.result, value])
        .sort(),
    ).toEqual([
      ['authenticated', 2],
      ['throttled', 3],
    ]);
    expect(
      lines.filter((line) =>
        String(line.msg).startsWith('token reviews at their concurrency limit'),
      ),
    ).toEqual([expect.objectContaining({ level: 40, cluster: 'prod', maxConcurrentReviews: 2 })]);
    // Slots free again once the reviews finish.
    kube().setDelay(0);
    for (const token of tokens.slice(2)) expect(await outcome(verifier.verify(token))).toBe('ok');
  });

  it('ok/one-token-asked-for-many-times-takes-one-slot', async () => {
    const { verifier } = setup(1);
    const token = await issue('orders-same');
    kube().setDelay(200);
    expect(
      new Set(await Promise.all(Array.from({ length: 10 }, () => outcome(verifier.verify(token))))),
    ).toEqual(new Set(['ok']));
  });
});
