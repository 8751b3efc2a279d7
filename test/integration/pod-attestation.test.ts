import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPodAttestor } from '../../src/attestation/index.js';
import { createMemoryCache } from '../../src/cache/index.js';
import { parseConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/observability/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import {
  startKubeApiServer,
  type KubeApiServer,
  type KubeObject,
} from '../support/kube-apiserver.js';
import {
  cronJob,
  deployment,
  digestOf,
  job,
  node,
  pod,
  replicaSet,
  type ContainerSpec,
} from '../support/pods.js';
import { writePolicies } from '../support/policies.js';

/**
 * Pod attestation end to end: a broker whose cluster has `podAttestation`, against the TLS API-server
 * stand-in serving Pods, ReplicaSets, Deployments, Jobs and Nodes with list and watch.
 */

const AUDIENCE = 'sts.example.com';
const NS = 'production';
const ORDERS = `registry.example.com/shop/orders@${digestOf('orders-v1')}`;
const ENVOY = `docker.io/envoyproxy/envoy@${digestOf('envoy-1.30')}`;
const MIGRATE = `registry.example.com/shop/migrate@${digestOf('migrate-7')}`;

const ROLES = {
  'pinned.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: orders-pinned }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: PinnedOrders
      Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
      Condition:
        StringEquals:
          "kubernetes.io/namespace": ${NS}
          "kubernetes.io/pod/owner": Deployment/orders
          "kubernetes.io/pod/label/app": orders
          "kubernetes.io/node/label/topology.kubernetes.io/zone": eu-west-1a
        ForAllValues:StringEquals:
          "kubernetes.io/pod/image": ["${ORDERS}", "${ENVOY}", "${MIGRATE}"]
issue:
  audiences: [orders-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
  claims:
    app: "{{pod.label.app}}"
    owner: "{{pod.owner}}"
    zone: "{{node.label.topology.kubernetes.io/zone}}"
`,
  'owner.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: by-owner }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
      Condition:
        "Null": { "kubernetes.io/pod/owner": "false" }
issue:
  audiences: [owner-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
  claims: { owner: "{{pod.owner}}", tier: "{{pod.annotation.example.com/tier}}" }
`,
};

interface PodSetup {
  name: string;
  containers?: ContainerSpec[];
  owner?: KubeObject;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  nodeName?: string;
}

const running = (
  name: string,
  reference: string,
  specImage: string,
  init = false,
): ContainerSpec => ({ name, image: specImage, imageID: reference, init });

describe('pod attestation through the cluster API', () => {
  let server: KubeApiServer;
  let broker: TestApp;
  let clock = Date.now();
  let rs: KubeObject;

  const podsPath = `/api/v1/namespaces/${NS}/pods`;
  const lists = () => server.hits(podsPath) - server.hits(`${podsPath}?watch`);
  const podGets = (name: string) => server.hits(`${podsPath}/${name}`);

  beforeAll(async () => {
    server = await startKubeApiServer();
    server.put(node('node-a', { 'topology.kubernetes.io/zone': 'eu-west-1a' }));
    server.put(node('node-b', { 'topology.kubernetes.io/zone': 'eu-west-1b' }));
    const orders = server.put(deployment(NS, 'orders'));
    rs = server.put(replicaSet(NS, 'orders-7d4b9c8f6', orders));
    const cluster = {
      name: 'prod',
      issuer: server.issuer,
      caFile: server.caFile,
      kubeconfig: server.kubeconfig(),
      audiences: [AUDIENCE],
      podAttestation: true,
    };
    const config = parseConfig({
      issuer: 'http://127.0.0.1:1',
      audience: AUDIENCE,
      clusters: [cluster],
    });
    const attestation = createPodAttestor({
      clusters: config.clusters,
      logger: silentLogger(),
      now: () => clock,
      directory: { watch: { retryBaseMs: 50, retryMaxMs: 200 } },
    });
    broker = await startTestApp(
      { clusters: [cluster], policies: writePolicies(ROLES) },
      { now: () => clock, cache: createMemoryCache({ now: () => clock }), attestation },
    );
  });
  afterAll(async () => {
    await broker?.close();
    await server?.stop();
  });
  beforeEach(() => {
    clock = Date.now();
  });

  /** Put a pod into the stand-in and issue a token bound to it. */
  async function podWithToken(setup: PodSetup): Promise<{ token: string; object: KubeObject }> {
    const object = server.put(
      pod({
        namespace: NS,
        name: setup.name,
        serviceAccount: 'order-service',
        owner: setup.owner === undefined ? rs : setup.owner,
        nodeName: setup.nodeName ?? 'node-a',
        labels: setup.labels ?? { app: 'orders', 'pod-template-hash': '7d4b9c8f6' },
        annotations: setup.annotations ?? {},
        containers: setup.containers ?? [
          running('migrate', MIGRATE, 'registry.example.com/shop/migrate:7', true),
          running('orders', `docker-pullable://${ORDERS}`, 'registry.example.com/shop/orders:1.4'),
          running('envoy', ENVOY, 'envoyproxy/envoy:v1.30'),
        ],
      }),
    );
    const token = await server.issueToken({
      namespace: NS,
      serviceAccount: 'order-service',
      pod: setup.name,
      podUid: object.metadata.uid,
      node: 'node-a',
      audiences: [AUDIENCE],
    });
    return { token, object };
  }

  const exchange = (subjectToken: string, resource = 'orders-pinned') =>
    postToken(
      broker.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        resource,
      }),
    );

  /** The enumerated reason of the last refusal the broker logged. */
  const lastRefusalReason = (): unknown => {
    const refusals = broker.logs.lines
      .map((line) => JSON.parse(line) as { msg?: string; err?: { reason?: unknown } })
      .filter((line) => line.msg === 'request refused');
    return refusals.at(-1)?.err?.reason;
  };

  async function eventually(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  it('ok/pinned-deployment-images-owner-label-zone', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-abcde' });
    const answer = await exchange(token);
    expect(answer.status).toBe(200);
    const claims = decodeJwt(answer.json.access_token as string);
    expect(claims).toMatchObject({ app: 'orders', owner: 'Deployment/orders', zone: 'eu-west-1a' });
  });

  it('ok/warm-cache-costs-no-api-call-per-exchange', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-warm1' });
    await eventually(async () => (await exchange(token)).status === 200, 'first exchange');
    const [listsBefore, getsBefore, rsBefore] = [
      lists(),
      podGets('orders-7d4b9c8f6-warm1'),
      server.hits(`/apis/apps/v1/namespaces/${NS}/replicasets/orders-7d4b9c8f6`),
    ];
    for (let i = 0; i < 10; i++) expect((await exchange(token)).status).toBe(200);
    expect(lists()).toBe(listsBefore);
    expect(podGets('orders-7d4b9c8f6-warm1')).toBe(getsBefore);
    expect(server.hits(`/apis/apps/v1/namespaces/${NS}/replicasets/orders-7d4b9c8f6`)).toBe(
      rsBefore,
    );
  });

  it('fail/unpinned-sidecar-image-denied', async () => {
    const { token } = await podWithToken({
      name: 'orders-7d4b9c8f6-sidecar',
      containers: [
        running('orders', ORDERS, 'registry.example.com/shop/orders:1.4'),
        running('debug', `docker.io/library/busybox@${digestOf('busybox')}`, 'busybox'),
      ],
    });
    expect(await exchange(token)).toMatchObject({ status: 403, json: { error: 'access_denied' } });
  });

  it('fail/no-container-statuses-yet-never-allows', async () => {
    const { token } = await podWithToken({
      name: 'orders-7d4b9c8f6-pending',
      containers: [{ name: 'orders', image: 'registry.example.com/shop/orders:1.4' }],
    });
    expect(await exchange(token)).toMatchObject({ status: 403, json: { error: 'access_denied' } });
  });

  it('fail/tag-only-image-id-never-allows', async () => {
    const { token } = await podWithToken({
      name: 'orders-7d4b9c8f6-tagonly',
      containers: [
        running(
          'orders',
          'registry.example.com/shop/orders:1.4',
          'registry.example.com/shop/orders:1.4',
        ),
      ],
    });
    expect(await exchange(token)).toMatchObject({ status: 403, json: { error: 'access_denied' } });
  });

  it('fail/image-id-without-repository-never-allows', async () => {
    const { token } = await podWithToken({
      name: 'orders-7d4b9c8f6-localbuild',
      containers: [
        running(
          'orders',
          `docker://${digestOf('local')}`,
          `registry.example.com/shop/orders@${digestOf('orders-v1')}`,
        ),
      ],
    });
    expect(await exchange(token)).toMatchObject({ status: 403, json: { error: 'access_denied' } });
  });

  it('fail/other-zone-denied', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-zoneb', nodeName: 'node-b' });
    expect(await exchange(token)).toMatchObject({ status: 403, json: { error: 'access_denied' } });
  });

  it('fail/pod-missing-is-invalid-request', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-gone' });
    server.remove('Pod', NS, 'orders-7d4b9c8f6-gone');
    await eventually(async () => (await exchange(token)).status === 400, 'the deletion to be seen');
    expect(await exchange(token)).toMatchObject({
      status: 400,
      json: {
        error: 'invalid_request',
        error_description: 'the pod named by subject_token does not exist',
      },
    });
    expect(lastRefusalReason()).toBe('pod_not_found');
  });

  it('fail/pod-replaced-uid-mismatch-is-invalid-request', async () => {
    const { token, object } = await podWithToken({ name: 'orders-7d4b9c8f6-same' });
    server.remove('Pod', NS, object.metadata.name);
    server.put({
      ...object,
      metadata: { ...object.metadata, uid: 'another-uid', resourceVersion: undefined },
    });
    expect(await exchange(token)).toMatchObject({
      status: 400,
      json: {
        error: 'invalid_request',
        error_description: 'the pod named by subject_token was replaced (its uid differs)',
      },
    });
    expect(lastRefusalReason()).toBe('pod_replaced');
  });

  it('ok/new-pod-not-yet-in-watch-is-read-once', async () => {
    // A pod created a moment ago may not have reached the watch: one GET answers.
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-fresh' });
    expect((await exchange(token)).status).toBe(200);
  });

  it('ok/label-change-seen-through-the-watch', async () => {
    const { token, object } = await podWithToken({ name: 'orders-7d4b9c8f6-relabel' });
    expect((await exchange(token)).status).toBe(200);
    server.put({ ...object, metadata: { ...object.metadata, labels: { app: 'something-else' } } });
    await eventually(async () => (await exchange(token)).status === 403, 'the relabel to deny');
  });

  it('ok/owner-chain-cronjob-job-statefulset-and-bare-pod', async () => {
    const report = server.put(cronJob(NS, 'report'));
    const reportJob = server.put(job(NS, 'report-29000000', report));
    const plainJob = server.put(job(NS, 'one-off'));
    const statefulSet: KubeObject = {
      kind: 'StatefulSet',
      apiVersion: 'apps/v1',
      metadata: { name: 'db', namespace: NS, uid: 'sts-uid' },
    };
    const cases: Array<[string, KubeObject | null, string]> = [
      ['report-29000000-x1', reportJob, 'CronJob/report'],
      ['one-off-x2', plainJob, 'Job/one-off'],
      ['db-0', statefulSet, 'StatefulSet/db'],
      ['bare', null, 'Pod/bare'],
    ];
    for (const [name, owner, expected] of cases) {
      const { token } = await podWithToken({
        name,
        owner: owner as KubeObject,
        annotations: { 'example.com/tier': 'gold' },
      });
      const answer = await exchange(token, 'by-owner');
      expect(answer.status, name).toBe(200);
      expect(decodeJwt(answer.json.access_token as string), name).toMatchObject({
        owner: expected,
        tier: 'gold',
      });
    }
  });

  it('ok/watch-drop-resumes-without-a-list', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-drop' });
    await eventually(async () => (await exchange(token)).status === 200, 'first exchange');
    await eventually(() => server.openWatches() === 1, 'the watch');
    const [listsBefore, watchesBefore] = [lists(), server.hits(`${podsPath}?watch`)];
    server.dropWatches();
    await eventually(
      () => server.openWatches() === 1 && server.hits(`${podsPath}?watch`) > watchesBefore,
      'the watch to resume',
    );
    expect(lists()).toBe(listsBefore);
    expect((await exchange(token)).status).toBe(200);
  });

  it('ok/watch-expired-410-relists-once', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-gone410' });
    await eventually(async () => (await exchange(token)).status === 200, 'first exchange');
    await eventually(() => server.openWatches() === 1, 'the watch');
    const listsBefore = lists();
    server.compact();
    server.dropWatches();
    await eventually(
      () => server.openWatches() === 1 && lists() === listsBefore + 1,
      'a relist and a new watch',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(lists()).toBe(listsBefore + 1);
    expect((await exchange(token)).status).toBe(200);
  });

  it('fail/api-outage-cached-for-60s-then-503', async () => {
    const { token } = await podWithToken({ name: 'orders-7d4b9c8f6-outage' });
    await eventually(async () => (await exchange(token)).status === 200, 'first exchange');
    server.setDown(true);
    const attemptsBefore = server.connectionAttempts();
    try {
      await eventually(() => server.openWatches() === 0, 'the watch to drop');
      // Resumption backs off (50 ms doubling to 200 ms here): about five tries a second, not a burst.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(server.connectionAttempts() - attemptsBefore).toBeLessThanOrEqual(12);
      clock += 30_000;
      expect((await exchange(token)).status).toBe(200);
      clock += 31_000;
      expect(await exchange(token)).toMatchObject({
        status: 503,
        json: {
          error: 'temporarily_unavailable',
          error_description:
            'the cluster API server cannot be reached to attest the pod; retry later',
        },
      });
      expect(lastRefusalReason()).toBe('pod_lookup_unavailable');
    } finally {
      server.setDown(false);
    }
    await eventually(
      async () => (await exchange(token)).status === 200,
      'recovery after the outage',
    );
  });

  it('fail/token-without-pod-binding-refused', async () => {
    const token = await server.issueToken({
      namespace: NS,
      serviceAccount: 'order-service',
      audiences: [AUDIENCE],
    });
    expect(await exchange(token)).toMatchObject({
      status: 400,
      json: {
        error: 'invalid_request',
        error_description:
          'subject_token names no pod: this cluster requires pod-bound service-account tokens',
      },
    });
    expect(lastRefusalReason()).toBe('pod_not_named');
  });
});
