import { normalizeHostPath, OIDC_PROVIDER_ARN } from './issuer.js';
import type { PreparedInput } from './types.js';

/**
 * Condition keys (docs/architecture.md, "Add a condition key"): how each one reads its value from a request. Key names are
 * case-insensitive as in AWS IAM, except the claim path after `token:` (JWT claims are not)
 * and the issuer path of an IRSA key (only its host is case-insensitive).
 */

/** Reads a key's value: `undefined` when missing, an array for multi-valued keys. */
export type KeyReader = (input: PreparedInput) => unknown;

export interface ResolvedKey {
  read: KeyReader;
  /** `aud`, `request:audience`, `request:scope`: ForAnyValue/ForAllValues make sense. */
  multiValued: boolean;
}

const FIXED_KEYS: Record<string, ResolvedKey> = {
  'kubernetes.io/namespace': single((i) => i.identity.namespace),
  'kubernetes.io/serviceaccount/name': single((i) => i.identity.serviceAccount?.name),
  'kubernetes.io/serviceaccount/uid': single((i) => i.identity.serviceAccount?.uid),
  'kubernetes.io/pod/name': single((i) => i.identity.pod?.name),
  'kubernetes.io/pod/uid': single((i) => i.identity.pod?.uid),
  'kubernetes.io/node/name': single((i) => i.identity.node?.name),
  'kubernetes.io/node/uid': single((i) => i.identity.node?.uid),
  'cluster:name': single((i) => i.identity.cluster),
  'request:audience': { read: (i) => i.request.audience, multiValued: true },
  'request:scope': { read: (i) => i.request.scope, multiValued: true },
  'request:token_type': single((i) => i.request.tokenType),
  /** Extension: the evaluation time, for Date* operators (`aws:CurrentTime` in AWS). */
  'request:time': single((i) => new Date(i.now * 1000).toISOString()),
};

export const KNOWN_KEYS = [...Object.keys(FIXED_KEYS), '<issuer host+path>:sub', '<issuer host+path>:aud', '<issuer host+path>:iss', 'token:<claim path>'];

function single(read: KeyReader): ResolvedKey {
  return { read, multiValued: false };
}

const IRSA_KEY = /^([^\s:]+):(sub|aud|iss)$/i;

/** Resolve a condition key at compile time; a string is the reason it is not usable. */
export function resolveKey(key: string): ResolvedKey | string {
  const fixed = FIXED_KEYS[key.toLowerCase()];
  if (fixed) return fixed;
  if (key.startsWith('token:')) {
    const path = key.slice('token:'.length);
    if (!path || path.split('.').some((part) => part === '')) return `condition key "${key}" has an empty claim path`;
    return { read: (i) => lookupPath(i.identity.claims, path), multiValued: true };
  }
  if (/^arn:/i.test(key)) {
    const hostPath = OIDC_PROVIDER_ARN.exec(key)?.[1];
    const hint = hostPath ? `; use "${hostPath}"` : '';
    return `condition key "${key}" looks like an ARN: IAM condition keys use the issuer host+path, not the provider ARN${hint}`;
  }
  const irsa = IRSA_KEY.exec(key);
  if (irsa && /[./]/.test(irsa[1] as string)) {
    // The claim name is case-insensitive like every IAM key; of the issuer, only the host is.
    const prefix = normalizeHostPath(irsa[1] as string);
    const claim = (irsa[2] as string).toLowerCase();
    const matchesIssuer = (i: PreparedInput) => i.issuerHostPath === prefix;
    if (claim === 'aud') return { read: (i) => (matchesIssuer(i) ? i.identity.aud : undefined), multiValued: true };
    if (claim === 'sub') return single((i) => (matchesIssuer(i) ? i.identity.sub : undefined));
    return single((i) => (matchesIssuer(i) ? i.identity.iss : undefined));
  }
  return `unknown condition key "${key}"`;
}

/**
 * `kubernetes.io.pod.name` in `{ "kubernetes.io": { pod: { name } } }`: claim names may
 * contain dots, so at each level the longest matching prefix of segments wins.
 */
export function lookupPath(root: unknown, path: string): unknown {
  return lookupSegments(root, path.split('.'));
}

function lookupSegments(node: unknown, segments: string[]): unknown {
  if (segments.length === 0) return node;
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
  const record = node as Record<string, unknown>;
  for (let take = segments.length; take >= 1; take--) {
    const name = segments.slice(0, take).join('.');
    if (Object.hasOwn(record, name)) {
      const found = lookupSegments(record[name], segments.slice(take));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
