import { describe, expect, it, vi } from 'vitest';
import { createMemoryCache } from '../../src/cache/index.js';
import { silentLogger } from '../../src/observability/index.js';
import { createSubjectTokenVerifier, parseToken } from '../../src/verifiers/index.js';
import type * as strictJson from '../../src/verifiers/strict-json.js';
import { parseStrictJson } from '../../src/verifiers/strict-json.js';
import { createTokenReviewVerifier } from '../../src/verifiers/tokenreview.js';
import {
  issueReviewToken,
  REVIEW_AUDIENCE as AUDIENCE,
  reviewCluster,
  useKubeApiServer,
} from '../support/tokenreview.js';

/**
 * A token routed to a TokenReview cluster is parsed once: the claims the router read are the
 * ones the review uses. The strict JSON parser is wrapped only to count its calls.
 */
vi.mock('../../src/verifiers/strict-json.js', async (importOriginal) => {
  const original = await importOriginal<typeof strictJson>();
  return { ...original, parseStrictJson: vi.fn(original.parseStrictJson) };
});
const parses = vi.mocked(parseStrictJson);

const kube = useKubeApiServer();
const issue = () => issueReviewToken(kube(), { serviceAccount: 'orders' });

describe('TokenReview clusters parse the token once', () => {
  it.each(['tokenreview', 'jwks+tokenreview'] as const)(
    'ok/header-and-payload-parsed-once (verify: %s)',
    async (verify) => {
      const cluster = reviewCluster(kube(), { verify, caFile: kube().caFile });
      const verifier = createSubjectTokenVerifier({
        clusters: [cluster],
        audience: AUDIENCE,
        cache: createMemoryCache(),
        logger: silentLogger(),
      });
      const token = await issue();
      parses.mockClear();
      expect((await verifier.verify(token)).verifiedBy).toBe(verify);
      expect(parses).toHaveBeenCalledTimes(2); // header and payload, by the router
      await verifier.close();
    },
  );

  it('ok/the-tokenreview-verifier-uses-the-claims-it-is-given', async () => {
    const cluster = reviewCluster(kube());
    const verifier = createTokenReviewVerifier(cluster, {
      cache: createMemoryCache(),
      logger: silentLogger(),
      audiences: [AUDIENCE],
    });
    const routed = parseToken(await issue());
    const claims = { ...routed.claims };
    parses.mockClear();
    const identity = await verifier.verify({ ...routed, claims });
    expect(identity.claims).toBe(claims);
    expect(parses).not.toHaveBeenCalled();
  });
});
