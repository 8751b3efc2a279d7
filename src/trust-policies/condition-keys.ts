import { normalizeHostPath, OIDC_PROVIDER_ARN } from './principals.js';
import { resolvePodKey } from './pod-keys.js';
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
  /** `aud`, `request:audience`, `request:scope`, `request:client_cert/uri`: ForAnyValue/ForAllValues make sense. */
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
  /** mTLS on the token endpoint: the client certificate's URI SANs (an X.509-SVID's SPIFFE ID) and subject DN. */
  'request:client_cert/uri': { read: (i) => i.request.clientCert?.uris, multiValued: true },
  'request:client_cert/subject': single((i) => i.request.clientCert?.subject || undefined),
  /** Extension: the evaluation time, for Date* operators (`aws:CurrentTime` in AWS). */
  'request:time': single((i) => new Date(i.now * 1000).toISOString()),
};

function single(read: KeyReader): ResolvedKey {
  return { read, multiValued: false };
}

/**
 * `<host[:port]/path>:sub|aud|iss`: self-managed clusters publish issuers such as
 * `https://api.k8s.internal:6443`, so the host may carry a port (or be a bracketed IPv6 address).
 */
const IRSA_KEY = /^((?:\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+)(?::\d{1,5})?(?:\/[^\s:]*)?):(sub|aud|iss)$/i;
/** A prefix that can only be an issuer: a dot, a path, a port or an IPv6 host (`cluster:name` and kin are fixed keys). */
const ISSUER_LIKE = /[./[]|:\d+(?:\/|$)/;

/**
 * An IRSA key's normalized issuer host+path and claim, or `undefined` for any other key. The
 * claim name is case-insensitive like every IAM key; of the issuer, only the host is.
 */
export function parseIrsaKey(
  key: string,
): { hostPath: string; claim: 'sub' | 'aud' | 'iss' } | undefined {
  const irsa = IRSA_KEY.exec(key);
  if (!irsa || !ISSUER_LIKE.test(irsa[1] as string)) return undefined;
  return {
    hostPath: normalizeHostPath(irsa[1] as string),
    claim: (irsa[2] as string).toLowerCase() as 'sub' | 'aud' | 'iss',
  };
}

/** Resolve a condition key at compile time; a string is the reason it is not usable. */
export function resolveKey(key: string): ResolvedKey | string {
  const fixed = FIXED_KEYS[key.toLowerCase()];
  if (fixed) return fixed;
  const pod = resolvePodKey(key);
  if (pod !== undefined) return pod;
  if (key.startsWith('token:')) {
    const path = key.slice('token:'.length);
    if (!path || path.split('.').some((part) => part === ''))
      return `condition key "${key}" has an empty claim path`;
    return { read: (i) => lookupPath(i.identity.claims, path), multiValued: true };
  }
  if (/^arn:/i.test(key)) {
    const hostPath = OIDC_PROVIDER_ARN.exec(key)?.[1];
    const hint = hostPath ? `; use "${hostPath}"` : '';
    return `condition key "${key}" looks like an ARN: IAM condition keys use the issuer host+path, not the provider ARN${hint}`;
  }
  const irsa = parseIrsaKey(key);
  if (irsa) {
    const prefix = irsa.hostPath;
    const matchesIssuer = (i: PreparedInput) => i.issuerHostPath === prefix;
    if (irsa.claim === 'aud')
      return { read: (i) => (matchesIssuer(i) ? i.identity.aud : undefined), multiValued: true };
    if (irsa.claim === 'sub') return single((i) => (matchesIssuer(i) ? i.identity.sub : undefined));
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
