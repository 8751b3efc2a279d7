import type { TemplateVars } from './types.js';

/**
 * Template variables from pod attestation: `{{pod.label.<name>}}`, `{{pod.annotation.<name>}}`,
 * `{{pod.owner}}`, `{{node.label.<name>}}`. Names after the prefix are taken as written (label names
 * may hold dots and a slash). Empty on a cluster without `podAttestation`, like a missing claim;
 * substituted values obey the same per-field rules as every variable.
 */
export const POD_TEMPLATE_VARIABLES = [
  'pod.label.<name>',
  'pod.annotation.<name>',
  'pod.owner',
  'node.label.<name>',
];

type Getter = (vars: TemplateVars) => unknown;

const PREFIXES: Array<{
  prefix: string;
  map: (vars: TemplateVars) => Record<string, string> | undefined;
}> = [
  { prefix: 'pod.label.', map: (vars) => vars.attestation?.labels },
  { prefix: 'pod.annotation.', map: (vars) => vars.attestation?.annotations },
  { prefix: 'node.label.', map: (vars) => vars.attestation?.nodeLabels },
];

export function podTemplateVariable(name: string): Getter | undefined {
  if (name === 'pod.owner') return (vars) => vars.attestation?.owner;
  for (const { prefix, map } of PREFIXES) {
    if (!name.startsWith(prefix) || name.length === prefix.length) continue;
    const key = name.slice(prefix.length);
    return (vars) => {
      const values = map(vars);
      return values && Object.hasOwn(values, key) ? values[key] : undefined;
    };
  }
  return undefined;
}
