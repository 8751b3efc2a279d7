import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric Tessera exports, on a registry of its own per app (no global state,
 * so tests can build many apps). Modules take the parts they need.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'tessera_process_' });
  const registers = [registry];
  return {
    registry,
    exchanges: new Counter({
      name: 'tessera_token_exchanges_total',
      help: 'Token exchanges by outcome (ok or the OAuth error code) and role',
      labelNames: ['result', 'role', 'token_type'] as const,
      registers,
    }),
    exchangeDuration: new Histogram({
      name: 'tessera_token_exchange_duration_seconds',
      help: 'Time to answer POST /v1/token',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    jwksFetches: new Counter({
      name: 'tessera_jwks_fetches_total',
      help: 'Fetches of a cluster issuer discovery document or JWKS, by result',
      labelNames: ['cluster', 'result'] as const,
      registers,
    }),
    jwksStale: new Gauge({
      name: 'tessera_jwks_stale',
      help: '1 while a cluster is served from its last good JWKS because the issuer is unreachable',
      labelNames: ['cluster'] as const,
      registers,
    }),
    tokenReviews: new Counter({
      name: 'tessera_tokenreview_requests_total',
      help: 'TokenReview calls to a cluster API server, by result',
      labelNames: ['cluster', 'result'] as const,
      registers,
    }),
    cacheErrors: new Counter({
      name: 'tessera_cache_backend_errors_total',
      help: 'Shared cache (Redis) calls that failed or timed out and fell back to memory',
      labelNames: ['backend'] as const,
      registers,
    }),
    policyReloads: new Counter({
      name: 'tessera_policy_reloads_total',
      help: 'Policy directory reloads, by result',
      labelNames: ['result'] as const,
      registers,
    }),
    shadowDisagreements: new Counter({
      name: 'tessera_policy_shadow_disagreements_total',
      help: 'Requests where a role shadow trust policy decided differently from the enforced one',
      labelNames: ['role', 'enforced', 'shadow'] as const,
      registers,
    }),
    keyRotations: new Counter({
      name: 'tessera_key_rotations_total',
      help: 'Signing key rotations, by algorithm',
      labelNames: ['alg'] as const,
      registers,
    }),
    certificatesIssued: new Counter({
      name: 'tessera_certificates_issued_total',
      help: 'X.509-SVIDs issued, by role',
      labelNames: ['role'] as const,
      registers,
    }),
    podLookups: new Counter({
      name: 'tessera_pod_attestation_api_calls_total',
      help: 'Cluster API reads made for pod attestation outside the watch (pod GETs, owners, nodes), by result',
      labelNames: ['cluster', 'kind', 'result'] as const,
      registers,
    }),
    imageSignatureChecks: new Counter({
      name: 'tessera_image_signature_checks_total',
      help: 'cosign signature lookups in a registry, by result (signed, unsigned, error)',
      labelNames: ['result'] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
