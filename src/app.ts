import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Hono } from 'hono';
import { createPodAttestor, type PodAttestor } from './attestation/index.js';
import { createSharedCache, type SharedCache } from './cache/index.js';
import type { Config } from './config/index.js';
import { loadDevCluster, type DevCluster } from './dev-cluster/index.js';
import { createX509Authority, type X509Authority } from './issuers/x509/index.js';
import { createKeyProvider, DEFAULT_JWKS_CACHE_SECONDS, publicJwks, type KeyProvider } from './keys/index.js';
import { createLogger, createMetrics, type Logger, type Metrics } from './observability/index.js';
import { createStsApp } from './sts/index.js';
import { createPolicyStore, HARD_MAX_LIFETIME, type PolicyStore } from './trust-policies/index.js';
import { createSubjectTokenVerifier, type SubjectTokenVerifier } from './verifiers/index.js';

/** Parts a test (or an embedding program) may supply instead of the ones built from config. */
export interface AppOverrides {
  logger?: Logger;
  /** Milliseconds since the epoch; every clock in the app reads this one. */
  now?: () => number;
  cache?: SharedCache;
  verifier?: SubjectTokenVerifier;
  policies?: PolicyStore;
  keys?: KeyProvider;
  /** Pod attestation (default: built from the clusters with `podAttestation` and `imageSignatures`). */
  attestation?: PodAttestor;
  /** Watch the policies directory for changes (default true). */
  watchPolicies?: boolean;
  /** Export Node process metrics (default true). */
  processMetrics?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface TesseraApp {
  config: Config;
  hono: Hono;
  /** The fetch handler, for `app.request()`-style tests and embedding. */
  fetch: (request: Request) => Response | Promise<Response>;
  request: Hono['request'];
  logger: Logger;
  metrics: Metrics;
  keys: KeyProvider;
  policies: PolicyStore;
  verifier: SubjectTokenVerifier;
  devCluster?: DevCluster;
  x509?: X509Authority;
  /** Listen on `config.listen` (or the given port; 0 = a free one). */
  listen(options?: { port?: number; host?: string }): Promise<{ url: string; port: number; server: ServerType }>;
  close(): Promise<void>;
}

/** How long relying parties may cache our JWKS; a new key is published this long before it signs. */
const JWKS_CACHE_SECONDS = DEFAULT_JWKS_CACHE_SECONDS;
/** A token exchange is a few KiB; slower senders are cut off (Node's defaults are 60 s and 300 s). */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

/**
 * Build a broker from a validated config: no globals, so tests make as many as they need.
 *
 * @example const app = await createApp(loadConfig()); await app.listen();
 */
export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<TesseraApp> {
  const now = overrides.now ?? Date.now;
  const logger = overrides.logger ?? createLogger({ level: config.logging.level });
  const metrics = createMetrics({ defaultMetrics: overrides.processMetrics ?? true });
  const closers: Array<() => Promise<void>> = [];
  try {
    // Each part is registered for closing as soon as it exists: a failure further down
    // must not leave a Redis client reconnecting forever in a process that should exit.
    const cache = overrides.cache ?? createSharedCache(config.cache, { logger, metrics });
    closers.push(() => cache.close());
    const devCluster = config.devCluster ? await loadDevCluster(config.devCluster, config.audience) : undefined;
    const clusters = devCluster ? [...config.clusters, devCluster.cluster] : config.clusters;
    const policies =
      overrides.policies ?? createPolicyStore({ dir: config.policies, logger, metrics, watch: overrides.watchPolicies ?? true, clusters });
    closers.push(() => policies.close());
    for (const role of policies.current().roles.values()) {
      if (!config.keys.algorithms.includes(role.issue.algorithm)) {
        logger.warn({ role: role.name, algorithm: role.issue.algorithm, configured: config.keys.algorithms }, 'role signs with an algorithm keys.algorithms does not enable: its exchanges answer 503');
      }
    }
    const keys =
      overrides.keys ??
      (await createKeyProvider(config.keys, {
        logger,
        metrics,
        cache,
        now,
        env: overrides.env,
        jwksCacheSeconds: JWKS_CACHE_SECONDS,
        // Tokens live at most the hard cap of every role, so retired keys stay published that long.
        maxTokenLifetimeSeconds: HARD_MAX_LIFETIME,
      }));
    closers.push(() => keys.close());
    const verifier =
      overrides.verifier ??
      createSubjectTokenVerifier({ clusters, audience: config.audience, cache, logger, metrics, now, maxStaleSeconds: config.cache.maxStale });
    closers.push(() => verifier.close());
    // Keys are fetched at start, not by the first pod: it gets its answer without waiting on an issuer.
    void verifier.warm();
    const attestation =
      overrides.attestation ??
      createPodAttestor({ clusters, imageSignatures: config.imageSignatures, logger, metrics, now, ...(overrides.env ? { env: overrides.env } : {}) });
    closers.push(() => attestation.close());
    const x509 = await createX509Authority({ provider: keys, config: config.x509, keysDir: config.keys.dir, logger, now });

    const hono = createStsApp({
      issuer: config.issuer,
      verifier,
      policies,
      keys,
      svids: x509,
      attestation,
      logger,
      metrics,
      now,
      algorithms: config.keys.algorithms,
      jwks: () => publicJwks(keys),
      jwksCacheSeconds: JWKS_CACHE_SECONDS,
      rateLimit: config.rateLimit,
      clientAddress: (c) => {
        try {
          return getConnInfo(c).remote.address;
        } catch {
          return undefined;
        }
      },
      trustBundle: (jwtKeys) => x509.trustBundle(jwtKeys),
      readiness: async () => {
        const keysReady = await keys.ready().catch(() => false);
        const roles = policies.current().roles.size;
        const clusterStatus = verifier.status();
        return {
          ready: keysReady,
          checks: { keys: keysReady ? 'ok' : 'unavailable', policies: { roles }, cache: { kind: cache.kind, shared: cache.healthy() }, clusters: clusterStatus },
        };
      },
      metricsText: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
    });

    const servers: ServerType[] = [];
    return {
      config,
      hono,
      fetch: (request) => hono.fetch(request),
      request: hono.request.bind(hono),
      logger,
      metrics,
      keys,
      policies,
      verifier,
      devCluster,
      x509,
      async listen(options = {}) {
        const port = options.port ?? config.listen.port;
        const hostname = options.host ?? config.listen.host;
        const server = await new Promise<ServerType>((resolve, reject) => {
          const started = serve({ fetch: hono.fetch, port, hostname }, () => resolve(started));
          started.once('error', reject);
        });
        // A client that trickles its headers or body must not hold a connection for minutes.
        if ('headersTimeout' in server) {
          server.headersTimeout = HEADERS_TIMEOUT_MS;
          server.requestTimeout = REQUEST_TIMEOUT_MS;
        }
        servers.push(server);
        const address = server.address() as AddressInfo;
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        return { url: `http://${host}:${address.port}`, port: address.port, server };
      },
      async close() {
        await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
        for (const close of closers.reverse()) await close().catch((error: unknown) => logger.warn({ err: error }, 'error while closing'));
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw error;
  }
}
