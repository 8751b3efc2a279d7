import { formatImage, parseDigestReference, unresolvedImage } from './image.js';
import type { PodRecord } from './types.js';

/**
 * A Pod object (from a list, a watch event, a GET or a file) reduced to what attestation needs.
 * The object is read defensively: a field of the wrong type counts as absent, never as a match.
 */

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  value !== null && typeof value === 'object' && !Array.isArray(value);
const text = (value: unknown): string | undefined =>
  typeof value === 'string' && value.length > 0 ? value : undefined;
const list = (value: unknown): Json[] => (Array.isArray(value) ? value.filter(isObject) : []);

/** A label or annotation map: only string values are kept. */
export function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(value)) return out;
  for (const [key, entry] of Object.entries(value)) if (typeof entry === 'string') out[key] = entry;
  return out;
}

/** `{kind, name, uid}` of the owner reference marked `controller: true`. */
export function controllerOf(metadata: Json): PodRecord['controller'] {
  const owner = list(metadata.ownerReferences).find((ref) => ref.controller === true);
  const kind = text(owner?.kind);
  const name = text(owner?.name);
  if (!owner || !kind || !name) return undefined;
  const uid = text(owner.uid);
  return { kind, name, ...(uid ? { uid } : {}) };
}

/**
 * Images of every container, init container and ephemeral container in the spec, with the digest
 * the kubelet reports in the matching status. Ephemeral containers count: `kubectl debug` can add
 * one to a running pod, and it sees the pod's token.
 */
function images(spec: Json, status: Json): { images: string[]; complete: boolean } {
  const statuses = new Map<string, Json>();
  for (const field of [
    'initContainerStatuses',
    'containerStatuses',
    'ephemeralContainerStatuses',
  ]) {
    for (const entry of list(status[field])) {
      const name = text(entry.name);
      if (name) statuses.set(name, entry);
    }
  }
  const containers = [
    ...list(spec.initContainers),
    ...list(spec.containers),
    ...list(spec.ephemeralContainers),
  ];
  let complete = containers.length > 0;
  const out: string[] = [];
  for (const container of containers) {
    const name = text(container.name);
    const ref = parseDigestReference(name ? statuses.get(name)?.imageID : undefined);
    if (ref) out.push(formatImage(ref));
    else {
      complete = false;
      out.push(unresolvedImage(container.image));
    }
  }
  return { images: [...new Set(out)], complete };
}

/** `undefined` when the object is not a Pod with a name, namespace and uid. */
export function podRecord(object: unknown): PodRecord | undefined {
  if (!isObject(object) || !isObject(object.metadata)) return undefined;
  const metadata = object.metadata;
  const name = text(metadata.name);
  const namespace = text(metadata.namespace);
  const uid = text(metadata.uid);
  if (!name || !namespace || !uid) return undefined;
  const spec = isObject(object.spec) ? object.spec : {};
  const status = isObject(object.status) ? object.status : {};
  const controller = controllerOf(metadata);
  const nodeName = text(spec.nodeName);
  return {
    name,
    namespace,
    uid,
    labels: stringMap(metadata.labels),
    annotations: stringMap(metadata.annotations),
    ...(controller ? { controller } : {}),
    ...(nodeName ? { nodeName } : {}),
    ...images(spec, status),
  };
}
