import type { Server } from 'node:http';
import type { Hono } from 'hono';
import { createPodAttestor, type PodAttestor } from './attestation/index.js';
import { createSharedCache, type SharedCache } from './cache/index.js';
import { ConfigError, issuerOfListener, type Config } from './config/index.js';
import { loadDevCluster, type DevCluster } from './dev-cluster/index.js';
import { createIssuers, createX509Authority, type X509Authority } from './issuers/index.js';
import {
  createKeyProvider,
  DEFAULT_JWKS_CACHE_SECONDS,
  publicJwks,
  type KeyProvider,
} from './keys/index.js';
import {
  createAuditLog,
  createLogger,
  createMetrics,
  type AuditLog,
  type Logger,
  type Metrics,
  type StateSources,
} from './observability/index.js';
import {
  clientAddress,
  createSts,
  peerAddress,
  trustedProxies,
  type Readiness,
  type Sts,
  type StsDeps,
} from './sts/index.js';
import {
  listenerSpecs,
  startListener,
  verifiedClientCertificate,
  loadTlsMaterial,
  TlsMaterialError,
  watchTlsFiles,
  type Listener,
  type TlsMaterial,
  type TlsReloader,
} from './server/index.js';
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
  /** How often `listen.tls` files are checked for a change (default 5 s). */
  tlsReloadIntervalMs?: number;
}

export interface TesseraApp {
  /** The config in force; `issuer` filled in (from the listener when the file has none). */
  config: Config & { issuer: string };
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
  /**
   * Listen on `config.listen` (or the given port; 0 = a free one), and on `publicListen` and
   * `adminListen` when configured. Returns the main listener; `listeners` has every one.
   */
  listen(options?: {
    port?: number;
    host?: string;
  }): Promise<{ url: string; port: number; server: Server; listeners: Listener[] }>;
  /** SIGTERM's first step: `/readyz` answers 503 while everything else is still served. */
  beginDrain(): void;
  /** SIGHUP: the audit file (`audit.file`) is opened again by its path, for log rotation. */
  reopenAuditFile(): void;
  /** Stop accepting and let in-flight requests finish; resolves when every connection is gone. */
  stopListening(): Promise<void>;
  /** Cut connections still open (the drain deadline passed). */
  destroyConnections(): void;
  /** Stop listening (at once), then close Redis, keys and the rest. */
  close(): Promise<void>;
}

/** How long relying parties may cache our JWKS; a new key is published this long before it signs. */
const JWKS_CACHE_SECONDS = DEFAULT_JWKS_CACHE_SECONDS;
const TLS_RELOAD_INTERVAL_MS = 5_000;

/** What `createApp` builds from config (or takes from overrides), closed in reverse order. */
interface Parts {
  config: Config;
  overrides: AppOverrides;
  now: () => number;
  logger: Logger;
  metrics: Metrics;
  audit: AuditLog;
  cache: SharedCache;
  devCluster: DevCluster | undefined;
  policies: PolicyStore;
  keys: KeyProvider;
  verifier: SubjectTokenVerifier;
  attestation: PodAttestor;
  x509: X509Authority;
}

/**
 * Build a broker from a validated config: no globals, so tests make as many as they need.
 *
 * @example const app = await createApp(loadConfig()); await app.listen();
 */
export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<TesseraApp> {
  const closers: Array<() => Promise<void>> = [];
  try {
    const parts = await buildParts(config, overrides, closers);
    const lifecycle = { draining: false };
    const stsDeps = stsDepsOf(parts, lifecycle);
    return appOf(parts, stsDeps, createSts(stsDeps), lifecycle, closers);
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw error;
  }
}

/**
 * Each part is registered for closing as soon as it exists: a failure further down must not
 * leave a Redis client reconnecting forever in a process that should exit.
 */
async function buildParts(
  config: Config,
  overrides: AppOverrides,
  closers: Array<() => Promise<void>>,
): Promise<Parts> {
  const now = overrides.now ?? Date.now;
  const logger = overrides.logger ?? createLogger({ level: config.logging.level });
  const metrics = createMetrics({ defaultMetrics: overrides.processMetrics ?? true });
  const audit = createAuditLog({ file: config.audit.file, logger, now, metrics });
  closers.push(() => audit.close());
  const cache =
    overrides.cache ??
    createSharedCache(config.cache, { logger, metrics, env: overrides.env ?? process.env });
  closers.push(() => cache.close());
  const devCluster = config.devCluster
    ? await loadDevCluster(config.devCluster, config.audience)
    : undefined;
  const clusters = devCluster ? [...config.clusters, devCluster.cluster] : config.clusters;
  const policies =
    overrides.policies ??
    createPolicyStore({
      dir: config.policies,
      logger,
      metrics,
      watch: overrides.watchPolicies ?? true,
      clusters,
    });
  closers.push(() => policies.close());
  warnOfDisabledAlgorithms(config, policies, logger);
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
  const { verifier, attestation } = buildVerification(
    { config, overrides, clusters, logger, metrics, cache, now },
    closers,
  );
  const x509 = await createX509Authority({
    provider: keys,
    config: config.x509,
    keysDir: config.keys.dir,
    logger,
    now,
  });
  metrics.observeState(stateSources({ config, now, verifier, cache, policies, keys, x509 }));
  return {
    config,
    overrides,
    now,
    logger,
    metrics,
    audit,
    cache,
    devCluster,
    policies,
    keys,
    verifier,
    attestation,
    x509,
  };
}

/** The subject-token verifier, already fetching its clusters' keys, and the pod attestor. */
function buildVerification(
  shared: Pick<Parts, 'config' | 'overrides' | 'logger' | 'metrics' | 'cache' | 'now'> & {
    clusters: Config['clusters'];
  },
  closers: Array<() => Promise<void>>,
): Pick<Parts, 'verifier' | 'attestation'> {
  const { config, overrides, clusters, logger, metrics, cache, now } = shared;
  const verifier =
    overrides.verifier ??
    createSubjectTokenVerifier({
      clusters,
      audience: config.audience,
      cache,
      logger,
      metrics,
      now,
      maxStaleSeconds: config.cache.maxStale,
    });
  closers.push(() => verifier.close());
  // Keys are fetched at start, not by the first pod: it gets its answer without waiting on an issuer.
  void verifier.warm();
  const attestation =
    overrides.attestation ??
    createPodAttestor({
      clusters,
      imageSignatures: config.imageSignatures,
      logger,
      metrics,
      now,
      ...(overrides.env ? { env: overrides.env } : {}),
    });
  closers.push(() => attestation.close());
  return { verifier, attestation };
}

function warnOfDisabledAlgorithms(config: Config, policies: PolicyStore, logger: Logger): void {
  for (const role of policies.current().roles.values()) {
    if (!config.keys.algorithms.includes(role.issue.algorithm)) {
      logger.warn(
        { role: role.name, algorithm: role.issue.algorithm, configured: config.keys.algorithms },
        'role signs with an algorithm keys.algorithms does not enable: its exchanges answer 503',
      );
    }
  }
}

function stsDepsOf(parts: Parts, lifecycle: { draining: boolean }): StsDeps {
  const { config, now, logger, metrics, audit, policies, keys, verifier, attestation, x509 } =
    parts;
  const proxies = trustedProxies(config.trustedProxies);
  const stsDeps: StsDeps = {
    issuer: config.issuer ?? issuerOfListener(config.listen),
    verifier,
    policies,
    // The JWT issuer reads the issuer per token: it follows the listener's port when the config names none.
    issuers: createIssuers({ keys, x509, now, issuer: () => stsDeps.issuer }),
    attestation,
    logger,
    metrics,
    now,
    algorithms: config.keys.algorithms,
    jwks: () => publicJwks(keys),
    jwksCacheSeconds: JWKS_CACHE_SECONDS,
    rateLimit: config.rateLimit,
    clientAddress: (request) => {
      const peer = peerAddress(request);
      return peer === undefined
        ? undefined
        : clientAddress(peer, request.header('x-forwarded-for'), proxies);
    },
    audit: (event) => audit.write(event),
    trustBundle: (jwtKeys) => x509.trustBundle(jwtKeys),
    readiness: () => readiness(parts, lifecycle.draining),
    metricsText: async () => ({
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    }),
    ...(config.listen.tls?.clientCaFile && { clientCertificate: verifiedClientCertificate }),
  };
  return stsDeps;
}

async function readiness(parts: Parts, draining: boolean): Promise<Readiness> {
  const { keys, policies, verifier, cache } = parts;
  const keysReady = await keys.ready().catch(() => false);
  const policySet = policies.current();
  const clusterStatus = verifier.status();
  // A broker whose clusters all lack keys (issuer unreachable, nothing cached) can only refuse.
  const canVerify = clusterStatus.length === 0 || clusterStatus.some((status) => status.ready);
  return {
    ready: keysReady && canVerify && !draining,
    checks: {
      keys: keysReady ? 'ok' : 'unavailable',
      policies: { roles: policySet.roles.size, version: policySet.version },
      cache: { kind: cache.kind, shared: cache.healthy() },
      clusters: clusterStatus,
      ...(draining && { lifecycle: 'draining' }),
    },
  };
}

function appOf(
  parts: Parts,
  stsDeps: StsDeps,
  sts: Sts,
  lifecycle: { draining: boolean },
  closers: Array<() => Promise<void>>,
): TesseraApp {
  const { config, logger } = parts;
  const { hono } = sts;
  const listening: Listening = { listeners: [], reloader: undefined };
  const stopListening = async (): Promise<void> => {
    listening.reloader?.stop();
    await Promise.all(listening.listeners.map((listener) => listener.stop()));
  };
  const app: TesseraApp = {
    config: { ...config, issuer: stsDeps.issuer },
    hono,
    fetch: (request) => hono.fetch(request),
    request: hono.request.bind(hono),
    logger,
    metrics: parts.metrics,
    keys: parts.keys,
    policies: parts.policies,
    verifier: parts.verifier,
    devCluster: parts.devCluster,
    x509: parts.x509,
    async listen(options = {}) {
      const main = await listenAll(parts, sts, listening, stopListening, options);
      if (config.issuer === undefined) {
        stsDeps.issuer = issuerOfListener({
          ...config.listen,
          host: options.host ?? config.listen.host,
          port: main.port,
        });
        app.config = { ...config, issuer: stsDeps.issuer };
      }
      return {
        url: main.url,
        port: main.port,
        server: main.server,
        listeners: [...listening.listeners],
      };
    },
    beginDrain() {
      lifecycle.draining = true;
    },
    reopenAuditFile() {
      parts.audit.reopen();
    },
    stopListening,
    destroyConnections() {
      for (const listener of listening.listeners) listener.destroyConnections();
    },
    async close() {
      const stopped = stopListening();
      for (const listener of listening.listeners) listener.destroyConnections();
      await stopped;
      for (const close of closers.reverse())
        await close().catch((error: unknown) => logger.warn({ err: error }, 'error while closing'));
    },
  };
  return app;
}

interface Listening {
  listeners: Listener[];
  reloader: TlsReloader | undefined;
}

/** Starts the main listener (and `publicListen`/`adminListen`), with TLS files watched for a change; returns the main one. */
async function listenAll(
  parts: Parts,
  sts: Sts,
  listening: Listening,
  stopListening: () => Promise<void>,
  options: { port?: number; host?: string },
): Promise<Listener> {
  const { config, overrides, now, logger } = parts;
  const listen = {
    ...config.listen,
    port: options.port ?? config.listen.port,
    host: options.host ?? config.listen.host,
  };
  const material = listen.tls ? await tlsMaterial(listen.tls, now) : undefined;
  const timeouts = {
    headersTimeoutMs: listen.headersTimeout * 1000,
    requestTimeoutMs: listen.requestTimeout * 1000,
  };
  try {
    for (const spec of listenerSpecs({ ...config, listen }, material))
      listening.listeners.push(await startListener(spec, sts.hono.fetch, timeouts, sts.direct));
  } catch (error) {
    await stopListening();
    throw error;
  }
  const main = listening.listeners[0];
  if (!main) throw new ConfigError('listen: no listener was configured');
  if (listen.tls && material) {
    listening.reloader = watchTlsFiles({
      files: listen.tls,
      initial: material,
      apply: (next) => main.setSecureContext(next),
      logger,
      now,
      intervalMs: overrides.tlsReloadIntervalMs ?? TLS_RELOAD_INTERVAL_MS,
    });
  }
  for (const listener of listening.listeners)
    logger.info(
      { listener: listener.name, url: listener.url, routes: listener.scope },
      'listening',
    );
  return main;
}

async function tlsMaterial(
  files: NonNullable<Config['listen']['tls']>,
  now: () => number,
): Promise<TlsMaterial> {
  try {
    return await loadTlsMaterial(files, now);
  } catch (error) {
    throw error instanceof TlsMaterialError
      ? new ConfigError(`listen.tls: ${error.message}`)
      : error;
  }
}

/** What the state gauges of /metrics read at scrape time. */
function stateSources(parts: {
  config: Config;
  now: () => number;
  verifier: SubjectTokenVerifier;
  cache: SharedCache;
  policies: PolicyStore;
  keys: KeyProvider;
  x509: X509Authority;
}): StateSources {
  const { config, keys, policies, x509 } = parts;
  const every = config.keys.rotation.every;
  return {
    now: parts.now,
    clusters: () => parts.verifier.status(),
    cache: () => ({
      backend: parts.cache.kind,
      up: parts.cache.kind === 'memory' || parts.cache.healthy(),
    }),
    policies: () => {
      const set = policies.current();
      return {
        loadedAt: set.loadedAt,
        roles: set.roles.size,
        failingFiles: policies.failingFiles?.() ?? 0,
      };
    },
    signingKeys: async () => {
      if (every === undefined) return [];
      const list = await keys.list();
      // The active key is replaced when its successor activates, else (none created yet) when it is due.
      return list.flatMap((key) => {
        if (key.state !== 'active') return [];
        const next = list.find(
          (other) =>
            other.alg === key.alg && other.state === 'next' && other.activateAt !== undefined,
        );
        return [
          {
            alg: key.alg,
            replaceAt: next?.activateAt ?? (key.activatedAt ?? key.createdAt) + every,
          },
        ];
      });
    },
    ca: () => {
      const notAfter = x509.notAfter();
      return notAfter === undefined
        ? undefined
        : { trustDomain: config.x509.trustDomain, notAfter };
    },
    ...(keys.kind === 'pkcs11'
      ? {
          hsm: {
            token: config.keys.tokenLabel ?? `slot-${config.keys.slot ?? 0}`,
            up: () => keys.ready(),
          },
        }
      : {}),
  };
}
