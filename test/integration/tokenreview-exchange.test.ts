import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../src/cache/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import {
  issueReviewToken,
  REVIEW_AUDIENCE as AUDIENCE,
  reviewClusterInput,
  useKubeApiServer,
} from '../support/tokenreview.js';
import { writePolicies } from '../support/policies.js';

/** Token exchange end to end for a `verify: tokenreview` cluster, against the API server stand-in. */

const ROLE = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: orders-reader }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
      Condition:
        StringEquals:
          "kubernetes.io/namespace": production
          "kubernetes.io/pod/name": orders-1
issue:
  audiences: [orders-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
`;

describe('token exchange with TokenReview', () => {
  const kube = useKubeApiServer();
  let broker: TestApp;
  let clock = Date.now();

  beforeAll(async () => {
    broker = await startTestApp(
      {
        clusters: [reviewClusterInput(kube(), { audiences: [AUDIENCE] })],
        policies: writePolicies({ 'orders-reader.yaml': ROLE }),
      },
      { now: () => clock, cache: createMemoryCache({ now: () => clock }) },
    );
  });
  afterAll(async () => {
    await broker?.close();
  });

  const exchange = (subjectToken: string) =>
    postToken(
      broker.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        resource: 'orders-reader',
      }),
    );
  const issue = () => issueReviewToken(kube(), { node: 'node-a' });

  it('ok/exchange-then-pod-deleted-refused-after-cache-window', async () => {
    const token = await issue();
    const first = await exchange(token);
    expect(first.status).toBe(200);
    expect(first.json.issued_token_type).toBe(JWT_TYPE);

    kube().revoke(token);
    clock += 30_000;
    expect((await exchange(token)).status).toBe(200);
    clock += 31_000;
    const refused = await exchange(token);
    expect(refused).toMatchObject({
      status: 400,
      json: { error: 'invalid_request', error_description: 'subject_token is not valid' },
    });
    expect(broker.logs.text()).not.toContain(token);
  });

  it('fail/api-server-down-is-503', async () => {
    kube().setDown(true);
    try {
      const answer = await exchange(await issue());
      expect(answer).toMatchObject({
        status: 503,
        json: {
          error: 'temporarily_unavailable',
          error_description: 'the cluster API server cannot verify tokens right now; retry later',
        },
      });
    } finally {
      kube().setDown(false);
    }
  });
});
