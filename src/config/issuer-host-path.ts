/**
 * An issuer as IRSA forms name it: host[:port]+path, without scheme. AWS keys conditions and
 * OIDC-provider ARNs this way, so two issuers that differ only in scheme, trailing slash, host
 * case or the scheme's default port are one issuer to those forms. The host is compared
 * case-insensitively (as DNS does); the path exactly, byte for byte.
 *
 * @example issuerHostPath('https://API.k8s.internal:443/prod/') === 'api.k8s.internal/prod'
 * @example issuerHostPath('https://api.k8s.internal:6443') === 'api.k8s.internal:6443'
 */

const SCHEME = /^(https?):\/\//i;

/** The host[:port] as the WHATWG URL parser writes it for `scheme`: lowercase, IDN in ASCII, default port dropped. */
function normalizeAuthority(authority: string, scheme: 'http' | 'https'): string {
  const candidate = `${scheme}://${authority}`;
  if (authority.includes('@') || !URL.canParse(candidate)) return authority.toLowerCase();
  return new URL(candidate).host;
}

function hostPath(rest: string, scheme: 'http' | 'https'): string {
  const trimmed = rest.replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const authority = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const path = slash === -1 ? '' : trimmed.slice(slash);
  return `${normalizeAuthority(authority, scheme)}${path}`;
}

/**
 * A host+path written without a scheme (an IRSA condition key's prefix, a Principal, the tail of
 * an ARN) is an https issuer's, as IAM requires: `:443` is dropped, any other port kept.
 */
export function normalizeHostPath(value: string): string {
  return hostPath(value, 'https');
}

/** `https://oidc.eks.eu-west-1.amazonaws.com/id/ABC/` → `oidc.eks.eu-west-1.amazonaws.com/id/ABC`. */
export function issuerHostPath(iss: string): string {
  const scheme = SCHEME.exec(iss);
  if (!scheme) return normalizeHostPath(iss);
  return hostPath(
    iss.slice(scheme[0].length),
    (scheme[1] as string).toLowerCase() as 'http' | 'https',
  );
}
