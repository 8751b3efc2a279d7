import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { projectedClaims, startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { writePolicies } from '../support/policies.js';
import { requireBinary, startRedis, type TestRedis } from '../support/redis.js';

/**
 * Two broker replicas sharing one real redis-server (issue 4): what one fetched the other uses,
 * refreshes on unknown kids are rate-limited across both, and Redis dying never turns into a 5xx.
 */

const hasRedis = requireBinary('redis-server');
const AUDIENCE = 'sts.example.com';

const ROLE = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: prod-reader }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: ProdDefault
      Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
      Condition:
        StringEquals: { "kubernetes.io/namespace": default }
issue:
  audiences: [prod-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
`;

describe.skipIf(!hasRedis)('two replicas sharing one Redis', () => {
  let redis: TestRedis;
  let idp: OidcIssuer;
  let replicas: [TestApp, TestApp];

  beforeAll(async () => {
    [redis, idp] = await Promise.all([startRedis(), startOidcIssuer()]);
    const policies = writePolicies({ 'prod-reader.yaml': ROLE });
    const replica = () =>
      startTestApp({
        clusters: [{ name: 'prod', issuer: idp.issuer, caFile: idp.caFile, audiences: [AUDIENCE] }],
        cache: { redis: redis.url },
        policies,
      });
    replicas = [await replica(), await replica()];
  });
  afterAll(async () => {
    await Promise.all((replicas ?? []).map((replica) => replica?.close()));
    await Promise.all([redis?.stop(), idp?.close()]);
  });

  const exchange = (replica: TestApp, subjectToken: string) =>
    postToken(
      replica.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        resource: 'prod-reader',
      }),
    );
  const validToken = () => idp.sign(projectedClaims(idp.issuer, { audience: AUDIENCE }));

  it('ok/second-replica-makes-zero-jwks-fetches', async () => {
    const first = await exchange(replicas[0], await validToken());
    expect(first.status).toBe(200);
    const fetchedByFirst = idp.requests();
    expect(idp.requests('jwks')).toBe(1);

    const second = await exchange(replicas[1], await validToken());
    expect(second.status).toBe(200);
    expect(idp.requests()).toBe(fetchedByFirst);
  });

  it('ok/sixty-concurrent-unknown-kids-cause-at-most-one-fetch', async () => {
    // As if the 10 s since the first fetch had passed: the refresh window is open again.
    const raw = new Redis(redis.url);
    const locks = await raw.keys('tessera:jwks-lock:*');
    // The lock the first fetch took lives in Redis, where both replicas see it.
    expect(locks).toHaveLength(1);
    await raw.del(...locks);
    raw.disconnect();
    const before = idp.requests('jwks');
    const tokens = await Promise.all(
      Array.from({ length: 60 }, (_, index) =>
        idp.sign(projectedClaims(idp.issuer, { audience: AUDIENCE }), { kid: `made-up-${index}` }),
      ),
    );
    const answers = await Promise.all(
      tokens.map((token, index) => exchange(replicas[index % 2]!, token)),
    );
    expect(new Set(answers.map((answer) => answer.status))).toEqual(new Set([400]));
    expect(new Set(answers.map((answer) => answer.json.error))).toEqual(
      new Set(['invalid_request']),
    );
    expect(idp.requests('jwks') - before).toBeLessThanOrEqual(1);
  });

  it('ok/redis-killed-mid-run-no-5xx-then-shared-again', async () => {
    const statuses: number[] = [];
    const round = async () => {
      const answers = await Promise.all(
        replicas.map(async (replica) => exchange(replica, await validToken())),
      );
      statuses.push(...answers.map((answer) => answer.status));
    };
    await round();
    await redis.kill();
    for (let index = 0; index < 5; index += 1) await round();
    await redis.restart();
    const deadline = Date.now() + 15_000;
    const restored = () =>
      replicas.every((replica) =>
        replica.logs.lines.some((line) => line.includes('redis cache reachable again')),
      );
    while (!restored()) {
      if (Date.now() > deadline) throw new Error('replicas did not go back to Redis');
      await round();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (let index = 0; index < 5; index += 1) await round();
    expect(statuses.filter((status) => status >= 500)).toEqual([]);
    expect(new Set(statuses)).toEqual(new Set([200]));
    const outageLogs = replicas.map(
      (replica) =>
        replica.logs.lines.filter((line) => line.includes('redis cache unreachable')).length,
    );
    expect(outageLogs.every((count) => count === 1)).toBe(true);
  });
});
