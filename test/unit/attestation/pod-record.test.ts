import { describe, expect, it } from 'vitest';
import {
  factsFromPodObject,
  parseDigestReference,
  podRecord,
} from '../../../src/attestation/index.js';

const HEX = 'a'.repeat(64);
const D = `sha256:${HEX}`;

describe('image references as the kubelet reports them', () => {
  const cases: Array<[string, unknown, string | undefined]> = [
    [
      'ok/containerd-fully-qualified',
      `docker.io/library/nginx@${D}`,
      `docker.io/library/nginx@${D}`,
    ],
    [
      'ok/docker-pullable-short-name',
      `docker-pullable://nginx@${D}`,
      `docker.io/library/nginx@${D}`,
    ],
    [
      'ok/docker-pullable-private-registry',
      `docker-pullable://registry.example.com:5000/team/app@${D}`,
      `registry.example.com:5000/team/app@${D}`,
    ],
    [
      'ok/index-docker-io-is-docker-io',
      `index.docker.io/envoyproxy/envoy@${D}`,
      `docker.io/envoyproxy/envoy@${D}`,
    ],
    [
      'ok/tag-and-digest-keeps-digest',
      `registry.example.com/app:1.2@${D}`,
      `registry.example.com/app@${D}`,
    ],
    [
      'ok/registry-host-lowercased',
      `Registry.Example.com/app@${D}`,
      `registry.example.com/app@${D}`,
    ],
    ['fail/image-id-only', D, undefined],
    ['fail/docker-scheme-image-id', `docker://${D}`, undefined],
    ['fail/tag-only', 'registry.example.com/app:1.2', undefined],
    ['fail/empty', '', undefined],
    ['fail/not-a-string', 42, undefined],
    ['fail/short-digest', 'registry.example.com/app@sha256:abc', undefined],
    ['fail/uppercase-hex', `registry.example.com/app@sha256:${'A'.repeat(64)}`, undefined],
    ['fail/sha512', `registry.example.com/app@sha512:${'a'.repeat(128)}`, undefined],
    ['fail/uppercase-path', `registry.example.com/App@${D}`, undefined],
    ['fail/other-scheme', `cri-o://registry.example.com/app@${D}`, undefined],
    ['fail/huge', `registry.example.com/${'a'.repeat(600)}@${D}`, undefined],
  ];
  it.each(cases)('%s', (_, value, expected) => {
    const ref = parseDigestReference(value);
    expect(ref ? `${ref.repository}@${ref.digest}` : undefined).toBe(expected);
  });
});

const base = (status: unknown, spec: Record<string, unknown> = {}) => ({
  kind: 'Pod',
  metadata: {
    name: 'p',
    namespace: 'ns',
    uid: 'u1',
    labels: { app: 'a', bad: 3 },
    ownerReferences: [{ kind: 'ReplicaSet', name: 'rs-1', controller: true }],
  },
  spec: { containers: [{ name: 'c', image: 'registry.example.com/app:1' }], ...spec },
  status,
});

describe('pod objects with missing or odd fields', () => {
  it('ok/digest-from-status', () => {
    expect(
      podRecord(
        base({ containerStatuses: [{ name: 'c', imageID: `registry.example.com/app@${D}` }] }),
      ),
    ).toMatchObject({
      images: [`registry.example.com/app@${D}`],
      complete: true,
      labels: { app: 'a' },
      controller: { kind: 'ReplicaSet', name: 'rs-1' },
    });
  });

  it('fail/no-statuses-yet-lists-spec-image-without-digest', () => {
    expect(podRecord(base(undefined))).toMatchObject({
      images: ['registry.example.com/app:1'],
      complete: false,
    });
  });

  it('fail/spec-digest-without-status-is-not-trusted', () => {
    const record = podRecord({
      ...base({}),
      spec: { containers: [{ name: 'c', image: `registry.example.com/app@${D}` }] },
    });
    expect(record).toMatchObject({ images: ['registry.example.com/app'], complete: false });
  });

  it('fail/init-and-ephemeral-containers-count', () => {
    const record = podRecord(
      base(
        { containerStatuses: [{ name: 'c', imageID: `registry.example.com/app@${D}` }] },
        {
          initContainers: [{ name: 'init', image: 'busybox' }],
          ephemeralContainers: [{ name: 'debugger', image: 'evil/shell' }],
        },
      ),
    );
    expect(record).toMatchObject({
      images: ['busybox', `registry.example.com/app@${D}`, 'evil/shell'],
      complete: false,
    });
  });

  it('fail/status-of-another-container-name-does-not-count', () => {
    expect(
      podRecord(
        base({ containerStatuses: [{ name: 'other', imageID: `registry.example.com/app@${D}` }] }),
      ),
    ).toMatchObject({ complete: false });
  });

  it.each([
    ['no-metadata', { kind: 'Pod' }],
    ['no-uid', { metadata: { name: 'p', namespace: 'ns' } }],
    ['array', []],
    ['null', null],
    ['uid-not-string', { metadata: { name: 'p', namespace: 'ns', uid: 7 } }],
  ])('fail/not-a-pod-%s', (_, value) => expect(podRecord(value)).toBeUndefined());

  it('fail/no-containers-is-incomplete', () => {
    expect(
      podRecord({ metadata: { name: 'p', namespace: 'ns', uid: 'u' }, spec: { containers: 'x' } }),
    ).toMatchObject({ images: [], complete: false });
  });
});

describe('facts from a file (policy explain --pod)', () => {
  it('ok/deployment-inferred-from-pod-template-hash', () => {
    const pod = base({
      containerStatuses: [{ name: 'c', imageID: `registry.example.com/app@${D}` }],
    });
    pod.metadata.ownerReferences = [
      { kind: 'ReplicaSet', name: 'orders-7d4b9c8f6', controller: true },
    ];
    pod.metadata.labels = { app: 'a', 'pod-template-hash': '7d4b9c8f6' } as never;
    expect(factsFromPodObject(pod).facts.owner).toBe('Deployment/orders');
  });

  it('ok/list-with-node-and-job', () => {
    const pod = base({}, { nodeName: 'n1' });
    pod.metadata.ownerReferences = [{ kind: 'Job', name: 'report-1', controller: true }];
    const list = {
      kind: 'List',
      items: [
        pod,
        { kind: 'Node', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': 'z1' } } },
        {
          kind: 'Job',
          metadata: {
            name: 'report-1',
            ownerReferences: [{ kind: 'CronJob', name: 'report', controller: true }],
          },
        },
      ],
    };
    expect(factsFromPodObject(list).facts).toMatchObject({
      owner: 'CronJob/report',
      nodeLabels: { 'topology.kubernetes.io/zone': 'z1' },
    });
  });

  it('fail/no-pod', () =>
    expect(() => factsFromPodObject({ kind: 'Node', metadata: { name: 'x' } })).toThrow(/no Pod/));
});
