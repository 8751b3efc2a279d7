import { DEFAULT_MAX_TOKEN_LIFETIME, type ClusterConfig } from '../config/index.js';
import { checkClaims, identityFromProjectedToken } from './claims.js';
import { createKeySource, createStaticKeySource, type KeySourceDeps } from './jwks-cache.js';
import { signatureError, verifySignature } from './jws.js';
import type { ClusterVerifier } from './types.js';

export type JwksVerifierDeps = KeySourceDeps & { audiences: readonly string[] };

/**
 * `verify: jwks`: verifies a cluster's tokens against its JWKS (static from config, or fetched
 * and cached): signature first, with one rate-limited refresh when the `kid` is unknown, then
 * the claims and the projected-token shape.
 */
export function createJwksVerifier(
  cluster: ClusterConfig,
  deps: JwksVerifierDeps,
): ClusterVerifier {
  // Whenever allowed, not only for an http issuer: an https issuer's discovery may name an http jwks_uri.
  if (cluster.allowInsecure && !cluster.jwks) {
    deps.logger.warn(
      { cluster: cluster.name, issuer: cluster.issuer },
      'cluster keys may be fetched over plain http (allowInsecure): development only',
    );
  }
  const source = cluster.jwks
    ? createStaticKeySource(cluster, deps.logger)
    : createKeySource(cluster, deps);
  return {
    async verify({ jws, alg, claims }) {
      let keys = await source.current();
      let result = verifySignature(jws, alg, keys);
      if (!result.ok && result.reason === 'unknown-kid') {
        keys = await source.afterUnknownKid(keys);
        result = verifySignature(jws, alg, keys);
      }
      if (!result.ok) throw signatureError(result.reason, jws.header);
      checkClaims(claims, {
        issuer: cluster.issuer,
        audiences: deps.audiences,
        nowSeconds: Math.floor(deps.now() / 1000),
        maxLifetimeSeconds: cluster.maxTokenLifetime ?? DEFAULT_MAX_TOKEN_LIFETIME,
      });
      return identityFromProjectedToken(claims, cluster.name, 'jwks');
    },
    warm: () =>
      source.current().then(
        () => undefined,
        () => undefined,
      ),
    status: () => source.status(),
    close: () => source.close(),
  };
}
