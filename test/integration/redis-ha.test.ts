import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSharedCache, type SharedCache } from '../../src/cache/index.js';
import { createLogger } from '../../src/observability/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { writePolicies } from '../support/policies.js';
import { requireBinary, TEST_CACHE_SECRET } from '../support/redis.js';
import {
  startRedisCluster,
  startRedisSentinelSet,
  type TestRedisCluster,
  type TestSentinelSet,
} from '../support/redis-topologies.js';
import { waitFor } from '../support/wait.js';

/**
 * The shared cache on highly available Redis, against real processes: a Sentinel set whose master
 * is killed under load (exchanges keep succeeding, from memory while no master answers), and a
 * three-master Redis Cluster. Exchanges go through TokenReview, which reads and writes the shared
 * cache on every new token.
 */
const hasRedis =
  requireBinary('redis-server') && requireBinary('redis-sentinel') && requireBinary('redis-cli');
const AUDIENCE = 'sts.example.com';
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
        StringEquals: { "kubernetes.io/namespace": production }
issue:
  audiences: [orders-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
`;
const env = { ...process.env, TESSERA_CACHE_KEY: TEST_CACHE_SECRET };
const reviewKey = (token: string) =>
  `tessera:tokenreview:prod:${createHash('sha256').update(token).digest('hex')}`;

describe.skipIf(!hasRedis)('shared cache on Redis Sentinel and Redis Cluster', () => {
  let server: KubeApiServer;
  let policies: string;
  beforeAll(async () => {
    server = await startKubeApiServer();
    policies = writePolicies({ 'orders-reader.yaml': ROLE });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const broker = (cache: Record<string, unknown>) =>
    startTestApp(
      {
        clusters: [
          {
            name: 'prod',
            issuer: server.issuer,
            verify: 'tokenreview',
            kubeconfig: server.kubeconfig(),
            audiences: [AUDIENCE],
          },
        ],
        cache,
        policies,
      },
      { env },
    );
  const issue = (pod: string) =>
    server.issueToken({
      namespace: 'production',
      serviceAccount: 'order-service',
      pod,
      audiences: [AUDIENCE],
    });
  const exchange = (app: TestApp, token: string) =>
    postToken(
      app.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: token,
        subject_token_type: JWT_TYPE,
        resource: 'orders-reader',
      }),
    );

  describe('sentinel', () => {
    let set: TestSentinelSet;
    let app: TestApp;
    beforeAll(async () => {
      set = await startRedisSentinelSet();
      app = await broker({ sentinel: { sentinels: set.sentinels, name: set.name } });
    });
    afterAll(async () => {
      await app?.close();
      await set?.stop();
    });

    it('ok/master-killed-under-load-every-exchange-succeeds-then-shared-on-the-new-master', async () => {
      const first = await issue('orders-0');
      expect((await exchange(app, first)).status).toBe(200);
      const oldMaster = set.master.port;
      const replica = new Redis(set.replica.url);
      try {
        await waitFor(
          async () => (await replica.exists(reviewKey(first))) === 1,
          'the entry on the replica',
        );
      } finally {
        replica.disconnect();
      }

      const statuses: number[] = [];
      let stop = false;
      let count = 0;
      const worker = async (id: number) => {
        while (!stop) {
          const token = await issue(`orders-${id}-${(count += 1)}`);
          statuses.push((await exchange(app, token)).status);
          statuses.push((await exchange(app, first)).status);
        }
      };
      const load = Promise.all([0, 1, 2, 3].map(worker));
      try {
        await waitFor(() => statuses.length >= 20, 'load before the failover');
        await set.master.kill();
        await waitFor(
          async () => (await set.masterPort()) !== oldMaster,
          'the sentinels to promote the replica',
          20_000,
        );
        const shared = async () =>
          (
            (await (await fetch(`${app.url}/readyz`)).json()) as {
              checks: { cache: { shared: boolean } };
            }
          ).checks.cache.shared;
        await waitFor(shared, 'the broker back on the shared cache', 20_000);
        const settled = statuses.length;
        await waitFor(() => statuses.length >= settled + 20, 'load after the failover');
      } finally {
        stop = true;
        await load;
      }
      expect(statuses.length).toBeGreaterThan(40);
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      // The outage was seen (and served from memory meanwhile), then the shared cache came back.
      expect(app.logs.text()).toContain('redis cache unreachable');

      // New entries land, authenticated, on the promoted master.
      expect(await set.masterPort()).toBe(set.replica.port);
      const after = await issue('orders-after');
      expect((await exchange(app, after)).status).toBe(200);
      const promoted = new Redis(set.replica.url);
      try {
        await waitFor(
          async () => (await promoted.exists(reviewKey(after))) === 1,
          'the new entry on the promoted master',
        );
        expect(await promoted.get(reviewKey(after))).toMatch(/^tc1\./);
      } finally {
        promoted.disconnect();
      }
    });
  });

  describe('cluster', () => {
    let cluster: TestRedisCluster;
    beforeAll(async () => {
      cluster = await startRedisCluster();
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    it('ok/entries-spread-over-three-masters-shared-between-replicas', async () => {
      const logger = createLogger({ level: 'silent' });
      const caches: SharedCache[] = [0, 1].map(() =>
        createSharedCache({ cluster: cluster.nodes }, { logger, env, timeoutMs: 2000 }),
      );
      try {
        const [one, two] = caches as [SharedCache, SharedCache];
        await Promise.all(
          Array.from({ length: 30 }, (_, index) =>
            one.set(`spread-${index}`, `value-${index}`, 60_000),
          ),
        );
        const read = await Promise.all(
          Array.from({ length: 30 }, (_, index) => two.get(`spread-${index}`)),
        );
        expect(read).toEqual(Array.from({ length: 30 }, (_, index) => `value-${index}`));
        expect(await one.acquireLock('rotation', 10_000, 'one')).toBe(true);
        expect(await two.acquireLock('rotation', 10_000, 'two')).toBe(false);
        expect(await two.releaseLock('rotation', 'two')).toBe(false);
        expect(await one.releaseLock('rotation', 'one')).toBe(true);
        expect(one.healthy() && two.healthy()).toBe(true);
        // Every master holds some of the keys: the slots really are spread.
        const perNode = await Promise.all(
          cluster.ports.map(async (port) => {
            const node = new Redis({ host: '127.0.0.1', port });
            try {
              return (await node.keys('tessera:spread-*')).length;
            } finally {
              node.disconnect();
            }
          }),
        );
        expect(perNode.every((keys) => keys > 0)).toBe(true);
      } finally {
        await Promise.all(caches.map((cache) => cache.close()));
      }
    });

    it('ok/exchanges-through-a-broker-on-the-cluster', async () => {
      const app = await broker({ cluster: cluster.nodes });
      try {
        const tokens = await Promise.all(
          [1, 2, 3, 4, 5].map((index) => issue(`orders-cluster-${index}`)),
        );
        for (const token of tokens) expect((await exchange(app, token)).status).toBe(200);
        const reviews = server.reviews().length;
        // A second replica finds the reviews in the cluster: no new TokenReview.
        const second = await broker({ cluster: cluster.nodes });
        try {
          for (const token of tokens) expect((await exchange(second, token)).status).toBe(200);
        } finally {
          await second.close();
        }
        expect(server.reviews().length).toBe(reviews);
      } finally {
        await app.close();
      }
    });
  });
});
