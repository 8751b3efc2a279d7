import type { JwsAlgorithm } from '../keys/index.js';
import { GRANT_TOKEN_EXCHANGE } from './request.js';

/**
 * The broker's OIDC discovery document: what AWS IAM, GCP workload identity federation and
 * Azure federated credentials read to trust Tessera as an identity provider.
 */
export function discoveryDocument(
  issuer: string,
  algorithms: readonly JwsAlgorithm[],
): Record<string, unknown> {
  const base = issuer.replace(/\/+$/, '');
  return {
    issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/v1/token`,
    grant_types_supported: [GRANT_TOKEN_EXCHANGE],
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [...algorithms],
    token_endpoint_auth_methods_supported: ['none'],
    claims_supported: [
      'iss',
      'sub',
      'aud',
      'exp',
      'iat',
      'nbf',
      'jti',
      'scope',
      'act',
      'kubernetes.io',
      'tessera',
    ],
  };
}
