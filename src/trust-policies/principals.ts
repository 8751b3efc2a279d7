import { issuerHostPath, normalizeHostPath } from '../config/index.js';

/**
 * How policies name an issuer: its URL (exact), its host[:port]+path (IRSA form) or an AWS IAM
 * OIDC-provider ARN ending in the host+path. Host names are case-insensitive and the scheme's
 * default port is dropped; paths are not case-folded (`/tenants/alpha` is not `/tenants/ALPHA`).
 * One matcher serves evaluation and lint.
 */

/** An AWS IAM OIDC-provider ARN; the capture is the issuer host+path (and, in a key, `:claim`). */
export const OIDC_PROVIDER_ARN = /^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/(.+)$/i;

const SCHEME = /^https?:\/\//i;

export { issuerHostPath, normalizeHostPath };

/** Does a `Principal.Federated` value name this issuer? `hostPath` is `issuerHostPath(iss)`, computed once by the caller. */
export type PrincipalMatcher = (cluster: string, iss: string, hostPath: string) => boolean;

/**
 * Compile one `Principal.Federated` value: `*`, a cluster name, an issuer URL (equal to `iss`
 * exactly, scheme included), an issuer host+path, or an OIDC-provider ARN.
 *
 * @example principalMatcher('arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/A')('prod', 'https://oidc.example.com/id/A', 'oidc.example.com/id/A') // true
 */
export function principalMatcher(principal: string): PrincipalMatcher {
  if (principal === '*') return () => true;
  if (SCHEME.test(principal)) return (_cluster, iss) => principal === iss;
  const wanted = normalizeHostPath(OIDC_PROVIDER_ARN.exec(principal)?.[1] ?? principal);
  return (cluster, _iss, hostPath) => principal === cluster || wanted === hostPath;
}
