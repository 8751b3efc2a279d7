import { isPodKey } from './pod-keys.js';
import type { CompiledCondition } from './types.js';

/**
 * `who-can` in words for pod-attestation conditions: which images, signers, owners and labels an
 * Allow requires. ForAllValues is true when the key is empty or missing (AWS semantics), so a
 * ForAllValues on images or signers is flagged as also admitting pods it does not name.
 */
export const isPodCondition = (condition: CompiledCondition): boolean =>
  condition.operator !== 'Cel' && isPodKey(condition.key);

const PREFIXES: Array<[string, string]> = [
  ['kubernetes.io/pod/label/', 'pod label'],
  ['kubernetes.io/pod/annotation/', 'pod annotation'],
  ['kubernetes.io/node/label/', 'node label'],
];

export function describePodCondition(condition: CompiledCondition): string {
  const lower = condition.key.toLowerCase();
  const values = condition.expected.map((value) => JSON.stringify(value)).join(' | ');
  const how =
    condition.baseOperator === 'StringEquals'
      ? ''
      : ` (${condition.negated ? 'not ' : ''}${condition.baseOperator})`;
  const vacuous =
    condition.qualifier === 'ForAllValues' || condition.ifExists
      ? ' [also admits a pod without any]'
      : '';
  let subject: string;
  if (lower === 'kubernetes.io/pod/image') {
    subject =
      condition.qualifier === 'ForAllValues'
        ? 'every image in'
        : condition.qualifier === 'ForAnyValue'
          ? 'some image in'
          : 'image';
  } else if (lower === 'kubernetes.io/pod/image/signed-by') {
    subject =
      condition.qualifier === 'ForAllValues'
        ? 'signers only among'
        : 'every image signed by one of';
  } else if (lower === 'kubernetes.io/pod/owner') subject = 'owner';
  else {
    const [prefix, label] = PREFIXES.find(([p]) => lower.startsWith(p)) as [string, string];
    subject = `${label} ${condition.key.slice(prefix.length)}`;
  }
  return `${subject}${how}: ${values}${vacuous}`;
}
