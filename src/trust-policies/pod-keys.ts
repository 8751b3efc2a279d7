import type { PodFacts } from '../attestation/index.js';
import type { KeyReader, ResolvedKey } from './condition-keys.js';

/**
 * Condition keys filled by pod attestation (docs/attestation.md). The key prefix is
 * case-insensitive as in IAM; a label or annotation name after it is case-sensitive, as in
 * Kubernetes. On a cluster without `podAttestation` every one of them is missing, so a condition
 * on them never allows (AWS missing-key semantics) — except ForAllValues and negated operators,
 * which are true on a missing key in AWS too; lint warns about such uses.
 */

const facts =
  (read: (facts: PodFacts) => unknown): KeyReader =>
  (input) => {
    const attested = input.identity.attestation;
    return attested ? read(attested) : undefined;
  };

const FIXED: Record<string, ResolvedKey> = {
  'kubernetes.io/pod/image': { read: facts((f) => f.images), multiValued: true },
  'kubernetes.io/pod/image/signed-by': { read: facts((f) => f.signedBy), multiValued: true },
  'kubernetes.io/pod/owner': { read: facts((f) => f.owner), multiValued: false },
};

const PREFIXES: Array<{
  prefix: string;
  map: (facts: PodFacts) => Record<string, string> | undefined;
}> = [
  { prefix: 'kubernetes.io/pod/label/', map: (f) => f.labels },
  { prefix: 'kubernetes.io/pod/annotation/', map: (f) => f.annotations },
  { prefix: 'kubernetes.io/node/label/', map: (f) => f.nodeLabels },
];

/** A Kubernetes label/annotation key: an optional DNS prefix and `/`, then a name (≤ 317 characters in all). */
const K8S_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export const POD_KEYS = [...Object.keys(FIXED), ...PREFIXES.map(({ prefix }) => `${prefix}<name>`)];

/** Whether `key` is filled by pod attestation (for lint). */
export const isPodKey = (key: string): boolean =>
  Object.hasOwn(FIXED, key.toLowerCase()) ||
  PREFIXES.some(({ prefix }) => key.toLowerCase().startsWith(prefix));

/** The reader of a pod-attestation key; `undefined` when `key` is not one; a string when it is malformed. */
export function resolvePodKey(key: string): ResolvedKey | string | undefined {
  const lower = key.toLowerCase();
  const fixed = FIXED[lower];
  if (fixed) return fixed;
  for (const { prefix, map } of PREFIXES) {
    if (!lower.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    if (name.length > 317 || !K8S_KEY.test(name))
      return `condition key "${key}": "${name}" is not a Kubernetes label or annotation name`;
    return {
      read: facts((f) => {
        const values = map(f);
        return values && Object.hasOwn(values, name) ? values[name] : undefined;
      }),
      multiValued: false,
    };
  }
  return undefined;
}
