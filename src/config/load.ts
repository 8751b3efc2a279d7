import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config, type ConfigInput } from './schema.js';

/** A config that cannot be used; `message` lists every problem as `path: reason`. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(message: string, problems: string[] = []) {
    super(message);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * The embedded defaults behind `npm start`: loopback only, in-memory cache, software keys
 * in `./.tessera/`, the example policies, and the dev cluster that `tessera dev-token` signs for.
 */
const DEFAULT_CONFIG: ConfigInput = {
  listen: { host: '127.0.0.1', port: 8080 },
  audience: 'tessera',
  clusters: [],
  devCluster: {
    name: 'dev',
    issuer: 'https://dev-cluster.tessera.local',
    keyDir: './.tessera/dev-cluster',
  },
  policies: './policies',
  keys: { provider: 'local', dir: './.tessera/keys' },
};

/** `clusters[0].issuer` from zod's path. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

function formatIssues(issues: ReadonlyArray<z.core.$ZodIssue>): string[] {
  return issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys
        .map((key) => `${formatPath([...issue.path, key])}: unknown field`)
        .join('\n');
    }
    return `${formatPath(issue.path)}: ${issue.message}`;
  });
}

/** Validate a config object; throws {@link ConfigError} naming every bad field. */
export function parseConfig(input: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const problems = formatIssues(result.error.issues);
    throw new ConfigError(`${source} is invalid:\n  ${problems.join('\n  ')}`, problems);
  }
  return result.data;
}

/** Environment overrides, for containers where the file is shared and the port is not. */
function applyEnv(input: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = { ...input };
  const listen = { ...(out.listen as Record<string, unknown> | undefined) };
  if (env.TESSERA_HOST) listen.host = env.TESSERA_HOST;
  if (env.TESSERA_PORT) listen.port = Number(env.TESSERA_PORT);
  if (env.TESSERA_HOST || env.TESSERA_PORT) out.listen = listen;
  if (env.TESSERA_ISSUER) out.issuer = env.TESSERA_ISSUER;
  if (env.TESSERA_REDIS_URL)
    out.cache = {
      ...(out.cache as Record<string, unknown> | undefined),
      redis: env.TESSERA_REDIS_URL,
    };
  if (env.TESSERA_LOG_LEVEL) out.logging = { level: env.TESSERA_LOG_LEVEL };
  return out;
}

/** Relative paths in a file are relative to that file, as in kubeconfig. */
function resolvePaths(config: Config, baseDir: string): Config {
  const at = (path: string | undefined): string | undefined =>
    path === undefined || path === 'in-cluster' || isAbsolute(path) ? path : resolve(baseDir, path);
  return {
    ...config,
    policies: at(config.policies) as string,
    clusters: config.clusters.map((cluster) => ({
      ...cluster,
      caFile: at(cluster.caFile),
      kubeconfig: at(cluster.kubeconfig),
    })),
    devCluster: config.devCluster && {
      ...config.devCluster,
      keyDir: at(config.devCluster.keyDir) as string,
    },
    keys: { ...config.keys, dir: at(config.keys.dir) as string, pinFile: at(config.keys.pinFile) },
    listen: config.listen.tls
      ? {
          ...config.listen,
          tls: {
            ...config.listen.tls,
            certFile: at(config.listen.tls.certFile) as string,
            keyFile: at(config.listen.tls.keyFile) as string,
            clientCaFile: at(config.listen.tls.clientCaFile),
          },
        }
      : config.listen,
    x509: { ...config.x509, dir: at(config.x509.dir) },
    cache: { ...config.cache, caFile: at(config.cache.caFile) },
    audit: {
      ...config.audit,
      file: config.audit.file === 'stdout' ? 'stdout' : at(config.audit.file),
    },
    ...(config.imageSignatures && {
      imageSignatures: {
        keys: Object.fromEntries(
          Object.entries(config.imageSignatures.keys).map(([name, file]) => [
            name,
            at(file) as string,
          ]),
        ),
        registries: Object.fromEntries(
          Object.entries(config.imageSignatures.registries).map(([host, registry]) => [
            host,
            { ...registry, caFile: at(registry.caFile) },
          ]),
        ),
      },
    }),
  };
}

/**
 * Load the config: `file` (or `TESSERA_CONFIG`), else the embedded defaults; then env overrides.
 *
 * @example const config = loadConfig({ file: 'tessera.yaml' });
 */
export function loadConfig(
  options: { file?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = options.file ?? env.TESSERA_CONFIG;
  const { raw, baseDir } = file
    ? readConfigFile(resolve(cwd, file))
    : { raw: DEFAULT_CONFIG as unknown, baseDir: cwd };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ConfigError(`${file ?? 'config'}: must be a mapping`);
  return resolvePaths(
    parseConfig(applyEnv(raw as Record<string, unknown>, env), file ?? 'config'),
    baseDir,
  );
}

function readConfigFile(path: string): { raw: unknown; baseDir: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  try {
    return { raw: parseYaml(text, { uniqueKeys: true }), baseDir: dirname(path) };
  } catch (error) {
    // The yaml library appends a frame of the offending source lines: those may hold a
    // password (a Redis URL), so only the first line and the position are reported.
    const yamlError = error as Error & { linePos?: Array<{ line: number; col: number }> };
    const position = yamlError.linePos?.[0];
    const where = position ? `:${position.line}:${position.col}` : '';
    const firstLine = (yamlError.message.split('\n')[0] ?? 'invalid YAML').replace(
      / at line \d+, column \d+:?$/,
      '',
    );
    throw new ConfigError(`${path}${where}: ${firstLine}`);
  }
}
