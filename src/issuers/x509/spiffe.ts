/**
 * SPIFFE ID and DNS name syntax (SPIFFE-ID spec §2, RFC 1123). Returns a problem string
 * or `undefined`, so callers decide whether a bad value is the client's fault or config's.
 */

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_SPIFFE_ID_BYTES = 2048;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A workload SPIFFE ID: `spiffe://<trustDomain>/<path>`, path required. */
export function spiffeIdProblem(value: string, trustDomain: string): string | undefined {
  if (Buffer.byteLength(value) > MAX_SPIFFE_ID_BYTES)
    return `is longer than ${MAX_SPIFFE_ID_BYTES} bytes`;
  const prefix = 'spiffe://';
  if (!value.startsWith(prefix)) return 'must start with spiffe://';
  const rest = value.slice(prefix.length);
  const slash = rest.indexOf('/');
  const domain = slash === -1 ? rest : rest.slice(0, slash);
  if (!domain || domain.length > 255 || !TRUST_DOMAIN.test(domain))
    return 'has an invalid trust domain';
  if (domain !== trustDomain) return `must be in trust domain ${trustDomain}`;
  if (slash === -1 || slash === rest.length - 1) return 'must have a path';
  for (const segment of rest.slice(slash + 1).split('/')) {
    if (!segment) return 'must not have empty path segments';
    if (segment === '.' || segment === '..') return 'must not have dot segments';
    if (!PATH_SEGMENT.test(segment)) return 'has characters outside [A-Za-z0-9._-] in its path';
  }
  return undefined;
}

/** A lowercase host name, optionally with a leading `*.` wildcard label. */
export function dnsNameProblem(value: string): string | undefined {
  if (value.length === 0 || value.length > 253) return 'must be 1 to 253 characters';
  const labels = value.split('.');
  const checked = labels[0] === '*' ? labels.slice(1) : labels;
  if (checked.length === 0) return 'must not be a bare wildcard';
  if (labels[0] === '*' && checked.length < 2) return 'wildcard must cover at least two labels';
  for (const label of checked) {
    if (!DNS_LABEL.test(label))
      return 'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters';
  }
  return undefined;
}
