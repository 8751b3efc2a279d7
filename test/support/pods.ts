import { createHash } from 'node:crypto';
import type { KubeObject } from './kube-apiserver.js';

/**
 * Kubernetes objects shaped as kube-apiserver serves them (`kubectl get -o json`): a Deployment,
 * its ReplicaSet and Pod, a Node, a CronJob's Job. Tests put them into the API-server stand-in.
 */

export const digestOf = (text: string): string =>
  `sha256:${createHash('sha256').update(text).digest('hex')}`;

export interface ContainerSpec {
  name: string;
  /** As the pod spec names it, e.g. `registry.example.com/orders:1.4`. */
  image: string;
  /** `status.containerStatuses[].imageID`; undefined: no status for this container yet. */
  imageID?: string;
  init?: boolean;
}

export function deployment(namespace: string, name: string): KubeObject {
  return {
    kind: 'Deployment',
    apiVersion: 'apps/v1',
    metadata: {
      name,
      namespace,
      generation: 3,
      labels: { app: name },
      annotations: { 'deployment.kubernetes.io/revision': '3' },
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [] } },
    },
    status: { replicas: 2, readyReplicas: 2 },
  };
}

export function replicaSet(namespace: string, name: string, owner?: KubeObject): KubeObject {
  return {
    kind: 'ReplicaSet',
    apiVersion: 'apps/v1',
    metadata: {
      name,
      namespace,
      labels: { 'pod-template-hash': name.split('-').at(-1) as string },
      ...(owner ? { ownerReferences: [controllerRef(owner)] } : {}),
    },
    spec: { replicas: 2, selector: { matchLabels: {} } },
    status: { replicas: 2 },
  };
}

export function job(namespace: string, name: string, owner?: KubeObject): KubeObject {
  return {
    kind: 'Job',
    apiVersion: 'batch/v1',
    metadata: { name, namespace, ...(owner ? { ownerReferences: [controllerRef(owner)] } : {}) },
    spec: { completions: 1, template: { spec: { containers: [] } } },
    status: { active: 1 },
  };
}

export function cronJob(namespace: string, name: string): KubeObject {
  return {
    kind: 'CronJob',
    apiVersion: 'batch/v1',
    metadata: { name, namespace },
    spec: { schedule: '*/5 * * * *' },
  };
}

export function node(name: string, labels: Record<string, string>): KubeObject {
  return {
    kind: 'Node',
    apiVersion: 'v1',
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...labels },
    },
    spec: { podCIDR: '10.244.1.0/24' },
    status: {
      conditions: [{ type: 'Ready', status: 'True' }],
      nodeInfo: { containerRuntimeVersion: 'containerd://1.7.13', kubeletVersion: 'v1.30.2' },
    },
  };
}

function controllerRef(owner: KubeObject): Record<string, unknown> {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export interface PodOptions {
  namespace: string;
  name: string;
  serviceAccount: string;
  containers: ContainerSpec[];
  owner?: KubeObject;
  nodeName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
}

export function pod(options: PodOptions): KubeObject {
  const status = (container: ContainerSpec) => ({
    name: container.name,
    image: container.image,
    imageID: container.imageID,
    ready: !container.init,
    restartCount: 0,
    started: !container.init,
    state: container.init
      ? { terminated: { exitCode: 0, reason: 'Completed' } }
      : { running: { startedAt: '2026-01-01T00:00:00Z' } },
  });
  const spec = (container: ContainerSpec) => ({
    name: container.name,
    image: container.image,
    imagePullPolicy: 'IfNotPresent',
    resources: {},
  });
  const init = options.containers.filter((c) => c.init);
  const main = options.containers.filter((c) => !c.init);
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: options.name,
      namespace: options.namespace,
      ...(options.uid ? { uid: options.uid } : {}),
      labels: options.labels ?? {},
      annotations: options.annotations ?? {},
      ...(options.owner ? { ownerReferences: [controllerRef(options.owner)] } : {}),
    },
    spec: {
      serviceAccountName: options.serviceAccount,
      ...(options.nodeName ? { nodeName: options.nodeName } : {}),
      ...(init.length > 0 ? { initContainers: init.map(spec) } : {}),
      containers: main.map(spec),
    },
    status: {
      phase: 'Running',
      ...(init.some((c) => c.imageID !== undefined)
        ? { initContainerStatuses: init.filter((c) => c.imageID !== undefined).map(status) }
        : {}),
      ...(main.some((c) => c.imageID !== undefined)
        ? { containerStatuses: main.filter((c) => c.imageID !== undefined).map(status) }
        : {}),
    },
  };
}
