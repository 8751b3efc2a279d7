import { Command } from 'commander';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PodFacts } from '../../../src/attestation/index.js';
import type { ClusterConfig } from '../../../src/config/index.js';
import { isTesseraError } from '../../../src/errors.js';
import { registerPolicyCommands } from '../../../src/cli/policy.js';
import {
  compilePolicy,
  formatProblem,
  lintDirectory,
  templateVars,
  whoCan,
} from '../../../src/trust-policies/index.js';
import { allow, identity, input, roleText, setOf } from './helpers.js';

const D1 = `registry.example.com/shop/orders@sha256:${'1'.repeat(64)}`;
const D2 = `docker.io/envoyproxy/envoy@sha256:${'2'.repeat(64)}`;

const facts: PodFacts = {
  images: [D1, D2],
  labels: { app: 'orders', 'app.kubernetes.io/Version': '1.4' },
  annotations: { 'example.com/tier': 'gold' },
  owner: 'Deployment/orders',
  nodeLabels: { 'topology.kubernetes.io/zone': 'eu-west-1a' },
  signedBy: ['release'],
};
const attested = (overrides: Partial<PodFacts> = {}) =>
  input(identity({ attestation: { ...facts, ...overrides } }));
const unattested = input(identity());

const cases: Array<[string, Record<string, unknown>, ReturnType<typeof input>, 'allow' | 'deny']> =
  [
    [
      'ok/for-all-images-pinned',
      { 'ForAllValues:StringEquals': { 'kubernetes.io/pod/image': [D1, D2] } },
      attested(),
      'allow',
    ],
    [
      'fail/for-all-images-one-not-pinned',
      { 'ForAllValues:StringEquals': { 'kubernetes.io/pod/image': [D1] } },
      attested(),
      'deny',
    ],
    [
      'ok/for-any-image',
      { 'ForAnyValue:StringLike': { 'kubernetes.io/pod/image': 'registry.example.com/shop/*' } },
      attested(),
      'allow',
    ],
    [
      'fail/for-all-images-unresolved-container',
      { 'ForAllValues:StringLike': { 'kubernetes.io/pod/image': '*@sha256:*' } },
      attested({ images: [D1, 'busybox:latest'] }),
      'deny',
    ],
    [
      'fail/image-key-missing-without-attestation',
      { 'ForAnyValue:StringEquals': { 'kubernetes.io/pod/image': D1 } },
      unattested,
      'deny',
    ],
    [
      'ok/owner',
      { StringEquals: { 'kubernetes.io/pod/owner': 'Deployment/orders' } },
      attested(),
      'allow',
    ],
    [
      'fail/owner-missing-without-attestation',
      { StringEquals: { 'kubernetes.io/pod/owner': 'Deployment/orders' } },
      unattested,
      'deny',
    ],
    [
      'ok/label',
      { StringEquals: { 'kubernetes.io/pod/label/app': 'orders' } },
      attested(),
      'allow',
    ],
    [
      'ok/key-prefix-case-insensitive',
      { StringEquals: { 'Kubernetes.IO/Pod/Label/app': 'orders' } },
      attested(),
      'allow',
    ],
    [
      'fail/label-name-case-sensitive',
      { StringEquals: { 'kubernetes.io/pod/label/App': 'orders' } },
      attested(),
      'deny',
    ],
    [
      'ok/label-name-with-prefix-and-capitals',
      { StringEquals: { 'kubernetes.io/pod/label/app.kubernetes.io/Version': '1.4' } },
      attested(),
      'allow',
    ],
    [
      'ok/annotation',
      { StringEquals: { 'kubernetes.io/pod/annotation/example.com/tier': 'gold' } },
      attested(),
      'allow',
    ],
    [
      'ok/node-label',
      { StringEquals: { 'kubernetes.io/node/label/topology.kubernetes.io/zone': 'eu-west-1a' } },
      attested(),
      'allow',
    ],
    [
      'fail/node-label-missing-unscheduled',
      { StringEquals: { 'kubernetes.io/node/label/topology.kubernetes.io/zone': 'eu-west-1a' } },
      attested({ nodeLabels: undefined }),
      'deny',
    ],
    [
      'ok/signed-by',
      { 'ForAnyValue:StringEquals': { 'kubernetes.io/pod/image/signed-by': 'release' } },
      attested(),
      'allow',
    ],
    [
      'fail/signed-by-empty',
      { 'ForAnyValue:StringEquals': { 'kubernetes.io/pod/image/signed-by': 'release' } },
      attested({ signedBy: [] }),
      'deny',
    ],
    ['ok/null-owner-false', { Null: { 'kubernetes.io/pod/owner': 'false' } }, attested(), 'allow'],
    [
      'fail/null-owner-false-without-attestation',
      { Null: { 'kubernetes.io/pod/owner': 'false' } },
      unattested,
      'deny',
    ],
  ];

describe('pod attestation condition keys', () => {
  it.each(cases)('%s', (_, condition, given, decision) => {
    const set = setOf([roleText('r', [allow(condition)])]);
    expect(set.decide(set.roles.get('r')!, given).decision).toBe(decision);
  });

  it('fail/malformed-label-name-is-a-load-error', () => {
    const file = compilePolicy(
      'r.json',
      roleText('r', [allow({ StringEquals: { 'kubernetes.io/pod/label/bad name': 'x' } })]),
    );
    expect(file.problems.map((problem) => problem.message)).toEqual([
      'condition key "kubernetes.io/pod/label/bad name": "bad name" is not a Kubernetes label or annotation name',
    ]);
  });
});

describe('pod template variables', () => {
  const role = (extra: Record<string, unknown>) =>
    setOf([
      roleText('r', [allow()], { issue: { audiences: ['vault'], maxLifetime: '1h', ...extra } }),
    ]).roles.get('r')!;

  it('ok/claims-from-labels-owner-node', () => {
    const r = role({
      claims: {
        app: '{{pod.label.app}}',
        owner: '{{pod.owner}}',
        zone: '{{node.label.topology.kubernetes.io/zone}}',
        tier: '{{pod.annotation.example.com/tier}}',
      },
    });
    expect(r.issue.claims(templateVars(identity({ attestation: facts })))).toEqual({
      app: 'orders',
      owner: 'Deployment/orders',
      zone: 'eu-west-1a',
      tier: 'gold',
    });
  });

  it('ok/missing-without-attestation-like-a-missing-claim', () => {
    const r = role({ claims: { app: '{{pod.label.app}}' } });
    expect(r.issue.claims(templateVars(identity()))).toEqual({});
  });

  it('fail/annotation-value-cannot-add-spiffe-segments', () => {
    const r = role({
      x509: {
        spiffeId: 'spiffe://example.org/ns/{{namespace}}/app/{{pod.annotation.example.com/tier}}',
        maxTtl: '1h',
      },
    });
    const vars = templateVars(
      identity({ attestation: { ...facts, annotations: { 'example.com/tier': 'gold/../admin' } } }),
    );
    let caught: unknown;
    try {
      r.issue.x509!.spiffeId(vars);
    } catch (error) {
      caught = error;
    }
    expect(isTesseraError(caught) && caught.description).toBe(
      "the token's value of {{pod.annotation.example.com/tier}} cannot be used in the role's x509.spiffeId: it contains characters outside [A-Za-z0-9._-]",
    );
  });

  it('fail/unknown-pod-variable-is-a-load-error', () => {
    const file = compilePolicy(
      'r.json',
      roleText('r', [allow()], {
        issue: { audiences: ['vault'], maxLifetime: '1h', claims: { x: '{{pod.labels.app}}' } },
      }),
    );
    expect(file.problems[0]?.message).toMatch(
      /^unknown template variable "\{\{pod.labels.app\}\}"/,
    );
  });
});

const PINNED = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: pinned }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: Pinned
      Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
      Condition:
        StringEquals: { "kubernetes.io/pod/owner": Deployment/orders }
        ForAllValues:StringEquals: { "kubernetes.io/pod/image": ["${D1}", "${D2}"] }
        ForAnyValue:StringEquals: { "kubernetes.io/pod/image/signed-by": release }
issue: { audiences: [orders], maxLifetime: 1h }
`;

describe('lint, explain and who-can with pod keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pod-keys-'));
  const files = mkdtempSync(join(tmpdir(), 'tessera-pod-files-'));
  writeFileSync(join(dir, 'pinned.yaml'), PINNED);
  const cluster = (podAttestation: boolean): ClusterConfig => ({
    name: 'prod',
    issuer: 'https://oidc.prod.example.com',
    verify: 'jwks',
    allowInsecure: false,
    podAttestation,
  });

  it('ok/no-warning-on-an-attesting-cluster', () => {
    expect(lintDirectory(dir, { clusters: [cluster(true)] }).problems).toEqual([]);
  });

  it('fail/warns-on-a-cluster-without-pod-attestation', () => {
    const problems = lintDirectory(dir, { clusters: [cluster(false)] }).problems.map((problem) =>
      formatProblem(problem).replace(`${dir}/`, ''),
    );
    expect(problems).toEqual([
      'pinned.yaml:12:25: warning: "kubernetes.io/pod/owner" comes from pod attestation, which cluster(s) prod do not enable (podAttestation): the key is missing there',
      'pinned.yaml:13:38: warning: "kubernetes.io/pod/image" comes from pod attestation, which cluster(s) prod do not enable (podAttestation): the key is missing there',
      'pinned.yaml:14:37: warning: "kubernetes.io/pod/image/signed-by" comes from pod attestation, which cluster(s) prod do not enable (podAttestation): the key is missing there',
    ]);
  });

  it('ok/who-can-names-images-signers-owner', () => {
    const set = setOf([
      JSON.stringify({
        apiVersion: 'tessera.dev/v1',
        kind: 'Role',
        metadata: { name: 'pinned' },
        trustPolicy: {
          Statement: [
            allow({
              StringEquals: {
                'kubernetes.io/pod/owner': 'Deployment/orders',
                'kubernetes.io/node/label/topology.kubernetes.io/zone': 'eu-west-1a',
              },
              'ForAllValues:StringEquals': { 'kubernetes.io/pod/image': [D1] },
              'ForAnyValue:StringEquals': { 'kubernetes.io/pod/image/signed-by': 'release' },
            }),
          ],
        },
        issue: { audiences: ['orders'], maxLifetime: '1h' },
      }),
    ]);
    expect(whoCan(set, set.roles.get('pinned')!).allows[0]?.pod).toEqual([
      'owner: "Deployment/orders"',
      'node label topology.kubernetes.io/zone: "eu-west-1a"',
      `every image in: "${D1}" [also admits a pod without any]`,
      'every image signed by one of: "release"',
    ]);
  });

  async function explain(podFile: string) {
    const out: string[] = [];
    const err: string[] = [];
    let code = -1;
    const program = new Command('tessera').exitOverride();
    registerPolicyCommands(program, {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      exit: (c) => (code = c),
    });
    const claims = join(files, 'claims.json');
    writeFileSync(
      claims,
      JSON.stringify({
        iss: 'https://oidc.prod.example.com',
        sub: 'system:serviceaccount:shop:orders',
        aud: ['sts'],
        'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'orders' } },
      }),
    );
    await program.parseAsync([
      'node',
      'tessera',
      'policy',
      'explain',
      '--role',
      'pinned',
      '--claims',
      claims,
      '--cluster',
      'prod',
      '--pod',
      podFile,
      '--policies',
      dir,
      '--json',
    ]);
    return { out: out.join(''), err: err.join(''), code };
  }

  it('ok/explain-with-pod-file-runs-pod-keys-offline', async () => {
    const podFile = join(files, 'pod.yaml');
    writeFileSync(
      podFile,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'orders-7d4b9c8f6-x',
          namespace: 'shop',
          uid: 'u',
          labels: { 'pod-template-hash': '7d4b9c8f6' },
          ownerReferences: [{ kind: 'ReplicaSet', name: 'orders-7d4b9c8f6', controller: true }],
        },
        spec: {
          containers: [
            { name: 'a', image: 'x' },
            { name: 'b', image: 'y' },
          ],
        },
        status: {
          containerStatuses: [
            { name: 'a', imageID: D1 },
            { name: 'b', imageID: `docker-pullable://envoyproxy/envoy@sha256:${'2'.repeat(64)}` },
          ],
        },
      }),
    );
    const result = await explain(podFile);
    // Signatures are not checked offline: signed-by is missing, so the statement does not match.
    expect(result.code).toBe(1);
    const trace = JSON.parse(result.out) as {
      statements: Array<{ conditions: Array<{ key: string; seen: unknown; matched: boolean }> }>;
    };
    expect(
      trace.statements[0]?.conditions.map(({ key, seen, matched }) => ({ key, seen, matched })),
    ).toEqual([
      { key: 'kubernetes.io/pod/owner', seen: 'Deployment/orders', matched: true },
      { key: 'kubernetes.io/pod/image', seen: [D1, D2], matched: true },
      { key: 'kubernetes.io/pod/image/signed-by', seen: undefined, matched: false },
    ]);
  });

  it('fail/explain-pod-file-without-pod', async () => {
    const podFile = join(files, 'node.yaml');
    writeFileSync(podFile, 'kind: Node\nmetadata: { name: n }\n');
    expect(await explain(podFile)).toEqual({
      out: '',
      err: `policy explain: --pod ${podFile}: the file holds no Pod with metadata.name, metadata.namespace and metadata.uid\n`,
      code: 2,
    });
  });
});
