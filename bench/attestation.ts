import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startKubeApiServer } from '../test/support/kube-apiserver.js';
import { deployment, digestOf, pod, replicaSet } from '../test/support/pods.js';
import {
  BROKER_CLI,
  freePort,
  load,
  startProcess,
  stopProcess,
  waitForHttp,
  type LoadFigures,
} from './support.js';

/**
 * Exchange rate with pod attestation on (watch-fed cache warm) next to the same broker and tokens
 * without it. The cluster is the TLS API-server stand-in of the tests, serving the pods by list and
 * watch; the broker runs in its own process. Prints figures; asserts nothing.
 */
const PODS = Number(process.env.BENCH_PODS ?? 200);
const NAMESPACES = 10;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const AUDIENCE = 'tessera';
const IMAGE = `registry.example.com/bench/app@${digestOf('bench-app')}`;

const role = (name: string, condition: Record<string, unknown>) =>
  stringify({
    apiVersion: 'tessera.dev/v1',
    kind: 'Role',
    metadata: { name },
    trustPolicy: {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Federated: 'bench' },
          Action: 'sts:TokenExchange',
          Condition: condition,
        },
      ],
    },
    issue: {
      audiences: [`${name}-audience`],
      algorithm: 'ES256',
      maxLifetime: '1h',
      defaultLifetime: '15m',
    },
  });

const server = await startKubeApiServer();
const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-attest-'));
try {
  const tokens: string[] = [];
  for (let ns = 0; ns < NAMESPACES; ns++) {
    const namespace = `bench-${ns}`;
    const rs = server.put(
      replicaSet(namespace, 'app-5f7c9d8b4', server.put(deployment(namespace, 'app'))),
    );
    for (let i = ns; i < PODS; i += NAMESPACES) {
      const name = `app-5f7c9d8b4-${i}`;
      const object = server.put(
        pod({
          namespace,
          name,
          serviceAccount: 'app',
          owner: rs,
          labels: { app: 'app' },
          containers: [{ name: 'app', image: 'registry.example.com/bench/app:1', imageID: IMAGE }],
        }),
      );
      tokens.push(
        await server.issueToken({
          namespace,
          serviceAccount: 'app',
          pod: name,
          podUid: object.metadata.uid,
          audiences: [AUDIENCE],
        }),
      );
    }
  }
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'policies', 'plain.yaml'),
    role('plain', { StringLike: { 'kubernetes.io/namespace': 'bench-*' } }),
  );
  writeFileSync(
    join(dir, 'policies', 'attested.yaml'),
    role('attested', {
      StringLike: { 'kubernetes.io/namespace': 'bench-*' },
      StringEquals: {
        'kubernetes.io/pod/owner': 'Deployment/app',
        'kubernetes.io/pod/label/app': 'app',
      },
      'ForAllValues:StringEquals': { 'kubernetes.io/pod/image': IMAGE },
    }),
  );
  const kubeconfig = server.kubeconfig();
  const bodies = (resource: string) =>
    tokens.map((token) =>
      new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        resource,
      }).toString(),
    );

  async function run(podAttestation: boolean): Promise<LoadFigures> {
    const port = await freePort();
    const file = join(dir, `config-${port}.yaml`);
    writeFileSync(
      file,
      stringify({
        issuer: `http://127.0.0.1:${port}`,
        listen: { host: '127.0.0.1', port },
        audience: AUDIENCE,
        clusters: [
          {
            name: 'bench',
            issuer: server.issuer,
            caFile: server.caFile,
            kubeconfig,
            podAttestation,
          },
        ],
        policies: join(dir, 'policies'),
        keys: { provider: 'local', dir: join(dir, 'keys') },
        // One load generator on one address: the exchange rate, not the per-address limit.
        rateLimit: { enabled: false },
        logging: { level: 'warn' },
      }),
    );
    const broker = startProcess([BROKER_CLI, 'serve', '--config', file]);
    try {
      const url = `http://127.0.0.1:${port}/v1/token`;
      await waitForHttp(`http://127.0.0.1:${port}/readyz`, 30_000, broker);
      const requests = bodies(podAttestation ? 'attested' : 'plain');
      // Warm: every namespace watched, every token's keys fetched, owners cached.
      for (const body of requests) {
        const answer = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body,
        });
        if (answer.status !== 200)
          throw new Error(
            `broker refused the bench exchange: ${answer.status} ${await answer.text()}`,
          );
      }
      return await load(url, requests, {
        seconds: SECONDS,
        rounds: ROUNDS,
        connections: CONNECTIONS,
      });
    } finally {
      await stopProcess(broker);
    }
  }

  const without = await run(false);
  const podGetsBefore = countPodGets();
  const withAttestation = await run(true);
  const row = (name: string, figures: LoadFigures) =>
    `  ${name.padEnd(40)} ${figures.rps.toFixed(0).padStart(8)} req/s   p50 ${String(figures.p50).padStart(4)} ms   p99 ${String(figures.p99).padStart(4)} ms   non-2xx ${figures.non2xx}`;
  console.log(
    `\nPod attestation (${PODS} pods in ${NAMESPACES} namespaces, ${CONNECTIONS} connections, median of ${ROUNDS} × ${SECONDS}s)`,
  );
  console.log(row('without pod attestation', without));
  console.log(row('with pod attestation (watch cache warm)', withAttestation));
  console.log(
    `  with / without                           ${(withAttestation.rps / without.rps).toFixed(2)}`,
  );
  console.log(`  pod GETs outside the watch (warm-up and load) ${countPodGets() - podGetsBefore}`);
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

function countPodGets(): number {
  let total = 0;
  for (let i = 0; i < PODS; i++)
    total += server.hits(`/api/v1/namespaces/bench-${i % NAMESPACES}/pods/app-5f7c9d8b4-${i}`);
  return total;
}
