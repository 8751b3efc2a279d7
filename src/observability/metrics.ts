import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * What the state gauges read at scrape time: plain functions over the app's parts, given once
 * they exist (`observeState`). Scraping costs the request path nothing.
 */
export interface StateSources {
  /** Milliseconds since the epoch. */
  now: () => number;
  clusters: () => ReadonlyArray<{ cluster: string; ready: boolean; keysFetchedAt?: number }>;
  cache: () => { backend: string; up: boolean };
  policies: () => { loadedAt: number; roles: number; failingFiles: number };
  /** Per algorithm, when the active key is due to be replaced (Unix seconds); absent without rotation. */
  signingKeys: () => Promise<ReadonlyArray<{ alg: string; replaceAt?: number }>>;
  /** The X.509 CA: notAfter (Unix seconds) of its certificate and chain; absent while there is no CA. */
  ca: () => { trustDomain: string; notAfter: number } | undefined;
  /** PKCS#11 only: the token, and whether a session to it answers. */
  hsm?: { token: string; up: () => Promise<boolean> };
}

/** Latency buckets for calls that leave the process (issuer, HSM): 1 ms to 10 s. */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Every metric Tessera exports, on a registry of its own per app (no global state,
 * so tests can build many apps). Modules take the parts they need.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  // prom-client's names already start with process_ / nodejs_: the prefix is ours alone.
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'tessera_' });
  const registers = [registry];
  let sources: StateSources | undefined;
  const read: ReadSources = () => sources;
  return {
    registry,
    /** Wire the state gauges to the app's parts (called once by createApp). */
    observeState(state: StateSources): void {
      sources = state;
    },
    ...verificationMetrics(registers, read),
    ...cacheMetrics(registers, read),
    ...signingMetrics(registers, read),
    ...policyMetrics(registers, read),
    ...exchangeMetrics(registers),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The state sources once createApp has wired them; undefined before. */
type ReadSources = () => StateSources | undefined;

const secondsUntil = (read: ReadSources, at: number): number =>
  at - (read()?.now() ?? Date.now()) / 1000;

/** What verifying subject tokens does: cluster keys, JWKS fetches, TokenReview and pod attestation calls. */
function verificationMetrics(registers: Registry[], read: ReadSources) {
  return {
    clusterReady: new Gauge({
      name: 'tessera_cluster_ready',
      help: '1 while a cluster has usable verification keys (fresh, or within cache.maxStale)',
      labelNames: ['cluster'] as const,
      registers,
      collect() {
        this.reset();
        for (const status of read()?.clusters() ?? [])
          this.set({ cluster: status.cluster }, status.ready ? 1 : 0);
      },
    }),
    jwksAge: new Gauge({
      name: 'tessera_jwks_age_seconds',
      help: 'Age of the JWKS a cluster is verified with, since it was fetched from the issuer (absent for static keys)',
      labelNames: ['cluster'] as const,
      registers,
      collect() {
        this.reset();
        const sources = read();
        if (!sources) return;
        const now = sources.now();
        for (const status of sources.clusters()) {
          if (status.keysFetchedAt !== undefined)
            this.set({ cluster: status.cluster }, Math.max(0, (now - status.keysFetchedAt) / 1000));
        }
      },
    }),
    jwksFetchDuration: new Histogram({
      name: 'tessera_jwks_fetch_duration_seconds',
      help: 'Time to fetch a cluster issuer discovery document and JWKS, by result',
      labelNames: ['cluster', 'result'] as const,
      buckets: CALL_BUCKETS,
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

/** The shared cache: whether it answers, its failures and the entries it refused. */
function cacheMetrics(registers: Registry[], read: ReadSources) {
  return {
    cacheUp: new Gauge({
      name: 'tessera_shared_cache_up',
      help: '1 while the shared cache answered its last call (always 1 for the in-memory cache); 0 while serving from memory',
      labelNames: ['backend'] as const,
      registers,
      collect() {
        this.reset();
        const cache = read()?.cache();
        if (cache) this.set({ backend: cache.backend }, cache.up ? 1 : 0);
      },
    }),
    cacheErrors: new Counter({
      name: 'tessera_cache_backend_errors_total',
      help: 'Shared cache (Redis) calls that failed or timed out and fell back to memory',
      labelNames: ['backend'] as const,
      registers,
    }),
    cacheRejected: new Counter({
      name: 'tessera_cache_rejected_entries_total',
      help: 'Shared cache entries ignored because they failed authentication (format, mac, expired)',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

/** Signing keys, the CA and the HSM: expiry, rotations, signature latency, certificates issued. */
function signingMetrics(registers: Registry[], read: ReadSources) {
  return {
    signingKeyExpiry: new Gauge({
      name: 'tessera_signing_key_expiry_seconds',
      help: 'Seconds until the active signing key of an algorithm is due to be replaced (keys.rotation.every); negative when rotation is overdue',
      labelNames: ['alg'] as const,
      registers,
      async collect() {
        this.reset();
        const keys = await read()
          ?.signingKeys()
          .catch(() => []);
        for (const key of keys ?? [])
          if (key.replaceAt !== undefined)
            this.set({ alg: key.alg }, secondsUntil(read, key.replaceAt));
      },
    }),
    caExpiry: new Gauge({
      name: 'tessera_ca_certificate_expiry_seconds',
      help: 'Seconds until the X.509 CA certificate (or a certificate of its chain) expires',
      labelNames: ['trust_domain'] as const,
      registers,
      collect() {
        this.reset();
        const ca = read()?.ca();
        if (ca) this.set({ trust_domain: ca.trustDomain }, secondsUntil(read, ca.notAfter));
      },
    }),
    hsmUp: new Gauge({
      name: 'tessera_hsm_up',
      help: '1 while the PKCS#11 token answers a session probe and holds a key for every configured algorithm (keys.provider pkcs11 only)',
      labelNames: ['token'] as const,
      registers,
      async collect() {
        this.reset();
        const hsm = read()?.hsm;
        if (hsm) this.set({ token: hsm.token }, (await hsm.up().catch(() => false)) ? 1 : 0);
      },
    }),
    signDuration: new Histogram({
      name: 'tessera_sign_duration_seconds',
      help: 'Time to sign with a private key (JWTs and certificates), by key provider (pkcs11: the HSM) and algorithm',
      labelNames: ['provider', 'alg'] as const,
      buckets: CALL_BUCKETS,
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
  };
}

/** The policy set in force and its reloads. */
function policyMetrics(registers: Registry[], read: ReadSources) {
  return {
    policyFilesFailing: new Gauge({
      name: 'tessera_policy_files_failing',
      help: 'Policy files whose current version fails to load; their last good version stays in force',
      registers,
      collect() {
        const policies = read()?.policies();
        if (policies) this.set(policies.failingFiles);
      },
    }),
    policyRoles: new Gauge({
      name: 'tessera_policy_roles',
      help: 'Roles in the policy set in force',
      registers,
      collect() {
        const policies = read()?.policies();
        if (policies) this.set(policies.roles);
      },
    }),
    policyLoadedAt: new Gauge({
      name: 'tessera_policy_loaded_timestamp_seconds',
      help: 'When the policy set in force was loaded (Unix seconds)',
      registers,
      collect() {
        const policies = read()?.policies();
        if (policies) this.set(policies.loadedAt / 1000);
      },
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
  };
}

/** Token exchanges by outcome, their latency, and audit events that could not be written. */
function exchangeMetrics(registers: Registry[]) {
  return {
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
    auditWriteFailures: new Counter({
      name: 'tessera_audit_write_failures_total',
      help: 'Audit events the audit file or standard output did not take (a failed write, or no reader left); their exchanges were answered',
      registers,
    }),
  };
}
