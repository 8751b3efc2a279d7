import { z } from 'zod';
import { LOOPBACK_HOSTS, SIGNING_ALGORITHMS } from '../constants.js';
import { parseCidr } from './cidr.js';
import { durationProblem, parseDuration } from './duration.js';
import { issuerHostPath } from './issuer-host-path.js';

/**
 * The config file (docs/architecture.md, "External contract"). Every field is validated and unknown fields are rejected
 * (`z.strictObject`), so a typo fails start-up instead of silently weakening security.
 */

/** A duration string (`15m`, `24h`) or seconds, parsed to seconds. */
export const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const seconds = parseDuration(value);
  if (seconds === undefined) {
    ctx.addIssue({ code: 'custom', message: durationProblem(value) });
    return z.NEVER;
  }
  return seconds;
});

/** A duration of at least `minSeconds`, for values where zero would be a misconfiguration. */
const durationAtLeast = (minSeconds: number, hint: string) =>
  durationSchema.refine((seconds) => seconds >= minSeconds, {
    message: `must be at least ${hint}`,
  });

const urlSchema = z.string().refine((value) => URL.canParse(value), { message: 'must be a URL' });

/**
 * An issuer is compared with a token's `iss` byte for byte, so it must be a clean URL:
 * https, no userinfo, query or fragment, no `..`, at most 2048 characters.
 */
function issuerProblem(value: string, allowHttp: boolean): string | undefined {
  if (value.length > 2048) return 'must be at most 2048 characters';
  if (!URL.canParse(value)) return allowHttp ? 'must be a URL' : 'must be an https URL';
  const url = new URL(value);
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:'))
    return 'must be an https URL';
  if (url.username || url.password) return 'must not contain userinfo';
  if (url.search || url.hash || value.includes('?') || value.includes('#'))
    return 'must not contain a query or fragment';
  if (value.split('/').some((segment) => segment === '..' || segment === '.'))
    return 'must not contain dot segments';
  return undefined;
}

/** `maxTokenLifetime` when a cluster does not set it: 24 h, the longest a pod's projected token normally lives. */
export const DEFAULT_MAX_TOKEN_LIFETIME = 86_400;

const clusterNameSchema = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'must be a DNS label (lowercase letters, digits, -)',
  );

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
    /**
     * The longest subject-token lifetime (`exp − iat`) accepted from this cluster; absent means
     * {@link DEFAULT_MAX_TOKEN_LIFETIME}. Bounds how long a leaked token stays usable.
     */
    maxTokenLifetime: durationAtLeast(60, '1m').optional(),
    /** Look the token's pod up through the cluster API (image, labels, owner, node): docs/attestation.md. */
    podAttestation: z.boolean().optional(),
  })
  .superRefine((cluster, ctx) => {
    const problem = issuerProblem(cluster.issuer, cluster.allowInsecure);
    if (problem) ctx.addIssue({ code: 'custom', path: ['issuer'], message: problem });
    if (cluster.jwksUri && !cluster.allowInsecure && !cluster.jwksUri.startsWith('https://')) {
      ctx.addIssue({ code: 'custom', path: ['jwksUri'], message: 'must be an https URL' });
    }
    if (cluster.verify !== 'jwks' && !cluster.kubeconfig) {
      ctx.addIssue({
        code: 'custom',
        path: ['kubeconfig'],
        message: `is required when verify is ${cluster.verify}`,
      });
    }
    if (cluster.podAttestation && !cluster.kubeconfig) {
      ctx.addIssue({
        code: 'custom',
        path: ['kubeconfig'],
        message: 'is required when podAttestation is true',
      });
    }
  });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envNameSchema = z.string().regex(ENV_NAME, 'must be an environment variable name');

/** A Sentinel or Cluster node: `"host:port"`, the host a name, an IPv4 address or a bracketed IPv6 one. */
const hostPortSchema = z.string().superRefine((value, ctx) => {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(value);
  if (!match) ctx.addIssue({ code: 'custom', message: 'must be "host:port"' });
  else if (Number(match[2]) > 65535)
    ctx.addIssue({ code: 'custom', message: 'port must be at most 65535' });
});

const redisUrlSchema = urlSchema.refine((value) => /^rediss?:\/\//i.test(value), {
  message: 'must be a redis:// or rediss:// URL',
});

/**
 * The shared cache: one of `redis` (URL), `sentinel` or `cluster`; absent, the cache is in memory.
 * Entries are authenticated with a key derived from the secret in the `keyEnv` variable.
 */
const cacheSchema = z
  .strictObject({
    redis: redisUrlSchema.optional(),
    sentinel: z
      .strictObject({ sentinels: z.array(hostPortSchema).min(1), name: z.string().min(1) })
      .optional(),
    cluster: z.array(hostPortSchema).min(1).optional(),
    /** Names the environment variable holding the secret the replicas share. */
    keyEnv: envNameSchema.default('TESSERA_CACHE_KEY'),
    /** Names the environment variable holding the Redis password (a URL's own password wins). */
    passwordEnv: envNameSchema.optional(),
    /** CA certificates (PEM) trusted for a `rediss://` server. */
    caFile: z.string().min(1).optional(),
    /** How long the last good JWKS of an unreachable issuer stays usable. */
    maxStale: durationSchema.default(86400),
  })
  .superRefine((cache, ctx) => {
    const targets = (['redis', 'sentinel', 'cluster'] as const).filter(
      (name) => cache[name] !== undefined,
    );
    if (targets.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: [targets[1] as string],
        message: `only one of redis, sentinel and cluster may be set (also ${targets[0]})`,
      });
    if (cache.caFile !== undefined && !cache.redis?.toLowerCase().startsWith('rediss://')) {
      ctx.addIssue({
        code: 'custom',
        path: ['caFile'],
        message: 'needs a rediss:// URL in cache.redis',
      });
    }
  });

const bucketSchema = (defaults: { perSecond: number; burst: number }) =>
  z
    .strictObject({
      /** Sustained token exchanges per second. */
      perSecond: z.number().positive().default(defaults.perSecond),
      /** Exchanges allowed at once before the sustained rate applies. */
      burst: z.number().int().positive().default(defaults.burst),
    })
    .default(defaults);

/**
 * On by default. Per client address before anything is verified (so garbage costs the sender
 * its own budget), per workload identity (cluster + namespace + service account) after it.
 */
const RATE_LIMIT_DEFAULTS = {
  enabled: true,
  perSecond: 50,
  burst: 100,
  perIdentity: { perSecond: 20, burst: 100 },
} as const;

const rateLimitSchema = z.strictObject({
  /** `false` turns both limits off; it must be said explicitly. */
  enabled: z.boolean().default(true),
  /** Per client address (after trustedProxies). */
  perSecond: z.number().positive().default(RATE_LIMIT_DEFAULTS.perSecond),
  burst: z.number().int().positive().default(RATE_LIMIT_DEFAULTS.burst),
  perIdentity: bucketSchema(RATE_LIMIT_DEFAULTS.perIdentity),
});

const cidrSchema = z.string().refine((value) => parseCidr(value) !== undefined, {
  message: 'must be a CIDR such as 10.0.0.0/8 or fd00::/8',
});

/**
 * Open connections per listener. Each holds a file descriptor: past the cap new connections are
 * closed at once, so a flood of half-sent requests cannot starve the process of descriptors.
 */
const DEFAULT_MAX_CONNECTIONS = 512;

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

/** cosign public keys and how to reach the registries that hold the signatures. */
export const imageSignaturesSchema = z.strictObject({
  /** Key name (what `kubernetes.io/pod/image/signed-by` reports) → PEM file of an ECDSA P-256 public key. */
  keys: z.record(z.string(), z.string().min(1)).superRefine((keys, ctx) => {
    for (const name of Object.keys(keys)) {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: 'key names use letters, digits, . _ -',
        });
    }
  }),
  registries: z
    .record(
      z.string(),
      z
        .strictObject({
          /** PEM CA bundle trusted for this registry instead of the system store. */
          caFile: z.string().min(1).optional(),
          /** Plain http: loopback test registries only. */
          insecure: z.boolean().default(false),
          username: z.string().min(1).optional(),
          /** Names the environment variable holding the password or token; the secret never sits in the file. */
          passwordEnv: envNameSchema.optional(),
        })
        .refine((registry) => !(registry.insecure && registry.caFile), {
          message: 'caFile and insecure exclude each other',
        })
        .refine(
          (registry) => (registry.username === undefined) === (registry.passwordEnv === undefined),
          {
            message: 'username and passwordEnv go together',
          },
        ),
    )
    .superRefine((registries, ctx) => {
      for (const host of Object.keys(registries)) {
        if (!/^[a-z0-9.-]+(:[0-9]{1,5})?$/.test(host))
          ctx.addIssue({
            code: 'custom',
            path: [host],
            message: 'must be a registry host[:port] in lowercase',
          });
      }
    })
    .default({}),
});

export const configSchema = z
  .strictObject({
    /** `iss` of issued tokens and base of the discovery document; absent: the URL of `listen`. */
    issuer: z.string().optional(),
    listen: listenSchema.default({
      host: '127.0.0.1',
      port: 8080,
      maxConnections: DEFAULT_MAX_CONNECTIONS,
      headersTimeout: 10,
      requestTimeout: 15,
    }),
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
        pinEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
          .optional(),
        pinFile: z.string().optional(),
        algorithms: z.array(z.enum(SIGNING_ALGORITHMS)).min(1).default(['ES256', 'RS256']),
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
        if (!keys.module)
          ctx.addIssue({
            code: 'custom',
            path: ['module'],
            message: 'is required for provider pkcs11',
          });
        if (keys.tokenLabel === undefined && keys.slot === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['tokenLabel'],
            message: 'tokenLabel or slot is required for provider pkcs11',
          });
        }
        if (!keys.pinEnv && !keys.pinFile) {
          ctx.addIssue({
            code: 'custom',
            path: ['pinEnv'],
            message: 'pinEnv or pinFile is required for provider pkcs11',
          });
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
        trustDomain: z
          .string()
          .regex(/^[a-z0-9._-]+$/, 'must be a SPIFFE trust domain (lowercase)')
          .default('example.org'),
        caTtl: durationAtLeast(3600, '1h').default(8760 * 3600),
        /** Directory of the CA certificate (and, for provider local, its key). */
        dir: z.string().optional(),
      })
      .default({ trustDomain: 'example.org', caTtl: 8760 * 3600 }),
    cache: cacheSchema.default({ keyEnv: 'TESSERA_CACHE_KEY', maxStale: 86400 }),
    rateLimit: rateLimitSchema.default(RATE_LIMIT_DEFAULTS),
    /** Peers (CIDRs, IPv4 or IPv6) whose X-Forwarded-For is believed; no one by default. */
    trustedProxies: z.array(cidrSchema).default([]),
    imageSignatures: imageSignaturesSchema.optional(),
    logging: z
      .strictObject({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info'),
      })
      .default({ level: 'info' }),
    /** Where token-exchange audit events go: absent, the log stream; `stdout`, or a file of their own. */
    audit: z.strictObject({ file: z.string().min(1).optional() }).default({}),
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
      if (first)
        ctx.addIssue({
          code: 'custom',
          path: [name, 'port'],
          message: `is already used by ${first}`,
        });
      else used.set(String(listener.port), name);
    }
    const seen = new Map<string, number>();
    if (config.devCluster) {
      const dev = config.devCluster;
      config.clusters.forEach((cluster, index) => {
        if (cluster.name === dev.name)
          ctx.addIssue({
            code: 'custom',
            path: ['clusters', index, 'name'],
            message: 'duplicates devCluster.name',
          });
        if (cluster.issuer === dev.issuer)
          ctx.addIssue({
            code: 'custom',
            path: ['clusters', index, 'issuer'],
            message: 'duplicates devCluster.issuer',
          });
      });
    }
    config.clusters.forEach((cluster, index) => {
      for (const key of [`name:${cluster.name}`, `issuer:${cluster.issuer}`]) {
        const first = seen.get(key);
        if (first !== undefined) {
          const field = key.startsWith('name') ? 'name' : 'issuer';
          ctx.addIssue({
            code: 'custom',
            path: ['clusters', index, field],
            message: `duplicates clusters[${first}].${field}`,
          });
        } else seen.set(key, index);
      }
    });
    for (const problem of sameIssuerProblems(config)) ctx.addIssue({ code: 'custom', ...problem });
  });

/**
 * IRSA condition keys, host+path Principals and OIDC-provider ARNs name an issuer without its
 * scheme, trailing slash, host case or default port. Two clusters whose issuers differ only in
 * those would both match such a policy, so a second cluster (its own keys, its own tokens)
 * could obtain a role written for the first: refused, naming both. Exact duplicates are
 * reported above.
 */
function sameIssuerProblems(config: {
  clusters: ReadonlyArray<{ name: string; issuer: string }>;
  devCluster?: { name: string; issuer: string } | undefined;
}): Array<{ path: PropertyKey[]; message: string }> {
  const entries = [
    ...(config.devCluster
      ? [{ label: 'devCluster', name: config.devCluster.name, issuer: config.devCluster.issuer }]
      : []),
    ...config.clusters.map((cluster, index) => ({
      label: `clusters[${index}]`,
      name: cluster.name,
      issuer: cluster.issuer,
      index,
    })),
  ];
  const problems: Array<{ path: PropertyKey[]; message: string }> = [];
  const firstByHostPath = new Map<string, (typeof entries)[number]>();
  for (const entry of entries) {
    const hostPath = issuerHostPath(entry.issuer);
    const first = firstByHostPath.get(hostPath);
    if (!first) {
      firstByHostPath.set(hostPath, entry);
      continue;
    }
    if (first.issuer === entry.issuer) continue;
    problems.push({
      path:
        entry.label === 'devCluster'
          ? ['devCluster', 'issuer']
          : ['clusters', (entry as { index: number }).index, 'issuer'],
      message:
        `cluster "${entry.name}" (${entry.issuer}) and cluster "${first.name}" (${first.issuer}, ${first.label}) are the same issuer ` +
        `to IRSA condition keys and principals (${hostPath}): issuers must differ in more than scheme, trailing slash, host case or default port`,
    });
  }
  return problems;
}

/**
 * Without `issuer`, the broker's issuer is the URL of the listener actually used (`TESSERA_PORT`
 * included); a port of 0 is filled in once the listener is bound.
 */
export function issuerOfListener(listen: { host: string; port: number; tls?: unknown }): string {
  const wildcard =
    listen.host === '' ||
    listen.host === '0.0.0.0' ||
    listen.host === '::' ||
    listen.host === '[::]';
  const host = wildcard
    ? 'localhost'
    : listen.host.includes(':') && !listen.host.startsWith('[')
      ? `[${listen.host}]`
      : listen.host;
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
export type ImageSignaturesConfig = z.output<typeof imageSignaturesSchema>;
