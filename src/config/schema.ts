import { z } from 'zod';
import { parseDuration } from './duration.js';

/**
 * The config file of DESIGN.md. Every field is validated and unknown fields are rejected
 * (`z.strictObject`), so a typo fails start-up instead of silently weakening security.
 */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A duration string (`15m`, `24h`) or seconds, parsed to seconds. */
export const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const seconds = parseDuration(value);
  if (seconds === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as 90s, 15m, 1h or 24h' });
    return z.NEVER;
  }
  return seconds;
});

/** A duration of at least `minSeconds`, for values where zero would be a misconfiguration. */
const durationAtLeast = (minSeconds: number, hint: string) =>
  durationSchema.refine((seconds) => seconds >= minSeconds, { message: `must be at least ${hint}` });

const urlSchema = z.string().refine((value) => URL.canParse(value), { message: 'must be a URL' });

/**
 * An issuer is compared with a token's `iss` byte for byte, so it must be a clean URL:
 * https, no userinfo, query or fragment, no `..`, at most 2048 characters.
 */
export function issuerProblem(value: string, allowHttp: boolean): string | undefined {
  if (value.length > 2048) return 'must be at most 2048 characters';
  if (!URL.canParse(value)) return allowHttp ? 'must be a URL' : 'must be an https URL';
  const url = new URL(value);
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) return 'must be an https URL';
  if (url.username || url.password) return 'must not contain userinfo';
  if (url.search || url.hash || value.includes('?') || value.includes('#')) return 'must not contain a query or fragment';
  if (value.split('/').some((segment) => segment === '..' || segment === '.')) return 'must not contain dot segments';
  return undefined;
}

const clusterNameSchema = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (lowercase letters, digits, -)');

const jwkSchema = z.looseObject({ kty: z.string() });

export const clusterSchema = z
  .strictObject({
    name: clusterNameSchema,
    issuer: z.string(),
    verify: z.enum(['jwks', 'tokenreview', 'jwks+tokenreview']).default('jwks'),
    audiences: z.array(z.string().min(1)).min(1).optional(),
    jwksUri: urlSchema.optional(),
    jwks: z.strictObject({ keys: z.array(jwkSchema) }).optional(),
    kubeconfig: z.string().min(1).optional(),
    caFile: z.string().min(1).optional(),
    allowInsecure: z.boolean().default(false),
  })
  .superRefine((cluster, ctx) => {
    const problem = issuerProblem(cluster.issuer, cluster.allowInsecure);
    if (problem) ctx.addIssue({ code: 'custom', path: ['issuer'], message: problem });
    if (cluster.jwksUri && !cluster.allowInsecure && !cluster.jwksUri.startsWith('https://')) {
      ctx.addIssue({ code: 'custom', path: ['jwksUri'], message: 'must be an https URL' });
    }
    if (cluster.verify !== 'jwks' && !cluster.kubeconfig) {
      ctx.addIssue({ code: 'custom', path: ['kubeconfig'], message: `is required when verify is ${cluster.verify}` });
    }
  });

const redisSchema = z.union([
  urlSchema,
  z.strictObject({
    sentinels: z.array(z.strictObject({ host: z.string(), port: z.number().int() })).min(1),
    name: z.string(),
    password: z.string().optional(),
  }),
  z.strictObject({ cluster: z.array(z.strictObject({ host: z.string(), port: z.number().int() })).min(1) }),
]);

/**
 * Open connections per listener. Each holds a file descriptor: past the cap new connections are
 * closed at once, so a flood of half-sent requests cannot starve the process of descriptors.
 */
export const DEFAULT_MAX_CONNECTIONS = 512;

const listenerFields = {
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  maxConnections: z.number().int().min(1).default(DEFAULT_MAX_CONNECTIONS),
};

/** An extra listener (`publicListen`, `adminListen`): plain HTTP, usually behind an ingress or inside the cluster. */
const extraListenerSchema = z.strictObject(listenerFields);

const tlsSchema = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** Clients of POST /v1/token must present a certificate chaining to one of these CAs. */
  clientCaFile: z.string().min(1).optional(),
});

const listenSchema = z.strictObject({
  ...listenerFields,
  tls: tlsSchema.optional(),
  /** A client that has not sent its headers (or whole request) by then is disconnected. */
  headersTimeout: durationAtLeast(0.1, '100ms').default(10),
  requestTimeout: durationAtLeast(0.1, '100ms').default(15),
});

export const configSchema = z
  .strictObject({
    /** `iss` of issued tokens and base of the discovery document; absent: the URL of `listen`. */
    issuer: z.string().optional(),
    listen: listenSchema.default({ host: '127.0.0.1', port: 8080, maxConnections: DEFAULT_MAX_CONNECTIONS, headersTimeout: 10, requestTimeout: 15 }),
    /** Optional: discovery, JWKS and the trust bundle only (what cloud IAM must reach). */
    publicListen: extraListenerSchema.optional(),
    /** Optional: /metrics, /healthz and /readyz move here. */
    adminListen: extraListenerSchema.optional(),
    lifecycle: z
      .strictObject({
        /** After SIGTERM, how long exchanges are still served while readiness reports 503. */
        drainSeconds: z.number().min(0).max(300).default(5),
      })
      .default({ drainSeconds: 5 }),
    /** Processes sharing the listeners: a number, or `auto` (one per CPU). */
    workers: z.union([z.number().int().min(1).max(256), z.literal('auto')]).default(1),
    /** `aud` every subject token must carry (unless its cluster lists its own). */
    audience: z.string().min(1),
    clusters: z.array(clusterSchema).default([]),
    /** The local dev cluster that `tessera dev-token` signs for; absent in production configs. */
    devCluster: z
      .strictObject({
        name: clusterNameSchema.default('dev'),
        issuer: z
          .string()
          .default('https://dev-cluster.tessera.local')
          .superRefine((issuer, ctx) => {
            const problem = issuerProblem(issuer, false);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
        keyDir: z.string().default('./.tessera/dev-cluster'),
      })
      .optional(),
    policies: z.string().default('./policies'),
    keys: z
      .strictObject({
        provider: z.enum(['local', 'pkcs11']).default('local'),
        dir: z.string().default('./.tessera/keys'),
        module: z.string().optional(),
        tokenLabel: z.string().optional(),
        slot: z.number().int().min(0).optional(),
        pinEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
        pinFile: z.string().optional(),
        algorithms: z.array(z.enum(['ES256', 'RS256', 'PS256'])).min(1).default(['ES256', 'RS256']),
        rsaBits: z.union([z.literal(2048), z.literal(3072), z.literal(4096)]).default(2048),
        rotation: z
          .strictObject({
            every: durationAtLeast(60, '1m').optional(),
            overlap: durationSchema.default(7200),
          })
          .default({ overlap: 7200 }),
      })
      .superRefine((keys, ctx) => {
        if (keys.provider !== 'pkcs11') return;
        if (!keys.module) ctx.addIssue({ code: 'custom', path: ['module'], message: 'is required for provider pkcs11' });
        if (keys.tokenLabel === undefined && keys.slot === undefined) {
          ctx.addIssue({ code: 'custom', path: ['tokenLabel'], message: 'tokenLabel or slot is required for provider pkcs11' });
        }
        if (!keys.pinEnv && !keys.pinFile) {
          ctx.addIssue({ code: 'custom', path: ['pinEnv'], message: 'pinEnv or pinFile is required for provider pkcs11' });
        }
      })
      .default({
        provider: 'local',
        dir: './.tessera/keys',
        algorithms: ['ES256', 'RS256'],
        rsaBits: 2048,
        rotation: { overlap: 7200 },
      }),
    x509: z
      .strictObject({
        trustDomain: z.string().regex(/^[a-z0-9._-]+$/, 'must be a SPIFFE trust domain (lowercase)').default('example.org'),
        caTtl: durationAtLeast(3600, '1h').default(8760 * 3600),
        /** Directory of the CA certificate (and, for provider local, its key). */
        dir: z.string().optional(),
      })
      .default({ trustDomain: 'example.org', caTtl: 8760 * 3600 }),
    cache: z
      .strictObject({
        redis: redisSchema.optional(),
        /** How long the last good JWKS of an unreachable issuer stays usable. */
        maxStale: durationSchema.default(86400),
      })
      .default({ maxStale: 86400 }),
    rateLimit: z
      .strictObject({
        /** Sustained token exchanges per second per client address. */
        perSecond: z.number().positive(),
        burst: z.number().int().positive(),
      })
      .optional(),
    logging: z
      .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .default({ level: 'info' }),
  })
  .superRefine((config, ctx) => {
    if (config.issuer !== undefined) {
      const insecureOk = isLoopbackUrl(config.issuer);
      const problem = issuerProblem(config.issuer, insecureOk);
      if (problem) ctx.addIssue({ code: 'custom', path: ['issuer'], message: problem });
    }
    const ports = [
      ['listen', config.listen],
      ['publicListen', config.publicListen],
      ['adminListen', config.adminListen],
    ] as const;
    const used = new Map<string, string>();
    for (const [name, listener] of ports) {
      if (!listener || listener.port === 0) continue;
      const first = used.get(String(listener.port));
      if (first) ctx.addIssue({ code: 'custom', path: [name, 'port'], message: `is already used by ${first}` });
      else used.set(String(listener.port), name);
    }
    const seen = new Map<string, number>();
    if (config.devCluster) {
      const dev = config.devCluster;
      config.clusters.forEach((cluster, index) => {
        if (cluster.name === dev.name) ctx.addIssue({ code: 'custom', path: ['clusters', index, 'name'], message: 'duplicates devCluster.name' });
        if (cluster.issuer === dev.issuer) ctx.addIssue({ code: 'custom', path: ['clusters', index, 'issuer'], message: 'duplicates devCluster.issuer' });
      });
    }
    config.clusters.forEach((cluster, index) => {
      for (const key of [`name:${cluster.name}`, `issuer:${cluster.issuer}`]) {
        const first = seen.get(key);
        if (first !== undefined) {
          const field = key.startsWith('name') ? 'name' : 'issuer';
          ctx.addIssue({ code: 'custom', path: ['clusters', index, field], message: `duplicates clusters[${first}].${field}` });
        } else seen.set(key, index);
      }
    });
  });

/**
 * Without `issuer`, the broker's issuer is the URL of the listener actually used (`TESSERA_PORT`
 * included); a port of 0 is filled in once the listener is bound.
 */
export function issuerOfListener(listen: { host: string; port: number; tls?: unknown }): string {
  const wildcard = listen.host === '' || listen.host === '0.0.0.0' || listen.host === '::' || listen.host === '[::]';
  const host = wildcard ? 'localhost' : listen.host.includes(':') && !listen.host.startsWith('[') ? `[${listen.host}]` : listen.host;
  return `${listen.tls ? 'https' : 'http'}://${host}:${listen.port}`;
}

function isLoopbackUrl(value: string): boolean {
  return URL.canParse(value) && LOOPBACK_HOSTS.has(new URL(value).hostname);
}

/** The raw file shape, before defaults. */
export type ConfigInput = z.input<typeof configSchema>;
/** A validated config with every default filled in; without `issuer`, see {@link issuerOfListener}. */
export type Config = z.output<typeof configSchema>;
export type ListenConfig = Config['listen'];
export type ListenerConfig = NonNullable<Config['publicListen']>;
export type ClusterConfig = z.output<typeof clusterSchema>;
export type KeysConfig = Config['keys'];
