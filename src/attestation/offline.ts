import { controllerOf, podRecord, stringMap } from './pod-record.js';
import type { PodFacts } from './types.js';

/**
 * The facts attestation would derive, from objects in a file (`policy explain --pod`): a Pod, or a
 * `List` holding the Pod and, optionally, its Node and its ReplicaSet or Job (for the node labels
 * and the owner chain, as `kubectl get -o yaml` prints them). Without the ReplicaSet, a Deployment
 * owner is inferred from the `pod-template-hash` label, as the Deployment controller names it.
 * Signatures are not checked offline: `signed-by` is absent.
 */
export function factsFromPodObject(document: unknown): {
  facts: PodFacts;
  pod: { name: string; namespace: string; uid: string };
} {
  const objects = isList(document) ? document.items : [document];
  const byKind = (kind: string) =>
    objects.filter((item) => (item as { kind?: unknown } | null)?.kind === kind) as Array<
      Record<string, unknown>
    >;
  const podObject =
    objects.length === 1 && (objects[0] as { kind?: unknown })?.kind === undefined
      ? objects[0]
      : byKind('Pod')[0];
  const record = podRecord(podObject);
  if (!record)
    throw new Error(
      'the file holds no Pod with metadata.name, metadata.namespace and metadata.uid',
    );
  const node = byKind('Node').find(
    (item) => (item.metadata as { name?: unknown } | undefined)?.name === record.nodeName,
  );
  const facts: PodFacts = {
    images: record.images,
    labels: record.labels,
    annotations: record.annotations,
    owner: ownerOffline(record, objects as Array<Record<string, unknown>>),
    ...(node ? { nodeLabels: stringMap((node.metadata as Record<string, unknown>).labels) } : {}),
  };
  return { facts, pod: { name: record.name, namespace: record.namespace, uid: record.uid } };
}

function isList(value: unknown): value is { items: unknown[] } {
  return (
    value !== null &&
    typeof value === 'object' &&
    Array.isArray((value as { items?: unknown }).items)
  );
}

function ownerOffline(
  record: NonNullable<ReturnType<typeof podRecord>>,
  objects: Array<Record<string, unknown>>,
): string {
  const controller = record.controller;
  if (!controller) return `Pod/${record.name}`;
  const parentKind =
    controller.kind === 'ReplicaSet'
      ? 'Deployment'
      : controller.kind === 'Job'
        ? 'CronJob'
        : undefined;
  if (!parentKind) return `${controller.kind}/${controller.name}`;
  const owner = objects.find(
    (item) =>
      item.kind === controller.kind &&
      (item.metadata as { name?: unknown } | undefined)?.name === controller.name,
  );
  if (owner) {
    const parent = controllerOf((owner.metadata ?? {}) as Record<string, unknown>);
    return parent?.kind === parentKind
      ? `${parent.kind}/${parent.name}`
      : `${controller.kind}/${controller.name}`;
  }
  const hash = record.labels['pod-template-hash'];
  if (controller.kind === 'ReplicaSet' && hash && controller.name.endsWith(`-${hash}`)) {
    return `Deployment/${controller.name.slice(0, -hash.length - 1)}`;
  }
  return `${controller.kind}/${controller.name}`;
}
