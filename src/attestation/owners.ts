import { KubeCallError, type KubeApi } from './kube.js';
import type { LookupCache } from './lookup-cache.js';
import { controllerOf } from './pod-record.js';
import type { PodRecord } from './types.js';

/**
 * `kubernetes.io/pod/owner`: the top controller as `<Kind>/<name>`. A ReplicaSet made by a
 * Deployment reports the Deployment, a Job made by a CronJob the CronJob; other controllers
 * (StatefulSet, DaemonSet, …) report themselves; a pod without one is `Pod/<name>`.
 * An intermediate object that is gone, or was replaced (another uid), stops the walk there.
 */
const PARENT: Record<string, { kind: 'ReplicaSet' | 'Job'; parent: string }> = {
  ReplicaSet: { kind: 'ReplicaSet', parent: 'Deployment' },
  Job: { kind: 'Job', parent: 'CronJob' },
};

export async function resolveOwner(
  api: KubeApi,
  cache: LookupCache<string>,
  pod: PodRecord,
): Promise<string> {
  const controller = pod.controller;
  if (!controller) return `Pod/${pod.name}`;
  const step = PARENT[controller.kind];
  if (!step) return `${controller.kind}/${controller.name}`;
  const key = `${step.kind}/${pod.namespace}/${controller.name}/${controller.uid ?? ''}`;
  return cache.get(key, async () => {
    let metadata: unknown;
    try {
      metadata = await api.getOwnerMetadata(step.kind, pod.namespace, controller.name);
    } catch (error) {
      if (error instanceof KubeCallError && error.kind === 'not-found')
        return `${controller.kind}/${controller.name}`;
      throw error;
    }
    const record = (metadata ?? {}) as Record<string, unknown>;
    if (controller.uid && record.uid !== controller.uid)
      return `${controller.kind}/${controller.name}`;
    const parent = controllerOf(record);
    return parent?.kind === step.parent
      ? `${parent.kind}/${parent.name}`
      : `${controller.kind}/${controller.name}`;
  });
}
