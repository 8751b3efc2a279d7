import { DEFAULT_MAX_TOKEN_LIFETIME, type ClusterConfig } from '../config/index.js';
import type { CompactJws } from './compact.js';
import { checkClaims, identityFromClaims } from './claims.js';
import { createKeySource, createStaticKeySource, type KeySourceDeps } from './jwks-cache.js';
import { signatureError, verifySignature } from './jws.js';
import type { AcceptedAlgorithm } from './keys.js';
import type { ClusterStatus, WorkloadIdentity } from './types.js';

/** A token already through the strict parse and header checks, routed to this cluster by `iss`. */
export interface RoutedToken {
  jws: CompactJws;
  alg: AcceptedAlgorithm;
  claims: Record<string, unknown>;
}

export interface ClusterJwksVerifier {
  verify(token: RoutedToken): Promise<WorkloadIdentity>;
  /** Loads the keys ahead of the first token; a failure is only recorded in status(). */
  warm(): Promise<void>;
  status(): ClusterStatus;
  close(): Promise<void>;
}

/**
 * Verifies a cluster's tokens against its JWKS (static from config, or fetched and cached):
 * signature first, with one rate-limited refresh when the `kid` is unknown, then the claims.
 */
export function createJwksVerifier(cluster: ClusterConfig, deps: KeySourceDeps & { audiences: readonly string[] }): ClusterJwksVerifier {
  const source = cluster.jwks ? createStaticKeySource(cluster, deps.logger) : createKeySource(cluster, deps);
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
      return identityFromClaims(claims, cluster.name, 'jwks');
    },
    warm: () => source.current().then(
      () => undefined,
      () => undefined,
    ),
    status: () => source.status(),
    close: () => source.close(),
  };
}
