import { accessSync, constants } from 'node:fs';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config/index.js';
import { pkcs11AddonMissing } from '../keys/index.js';
import { formatProblem, loadPolicySet, PolicyLoadError } from '../trust-policies/index.js';
import { globalConfigFile } from './groups.js';
import { escapeControl } from '../terminal/index.js';

/** A file the broker reads at start-up, with the config field that names it. */
function referencedFiles(config: Config): Array<[field: string, path: string]> {
  const files: Array<[string, string]> = [];
  config.clusters.forEach((cluster, index) => {
    if (cluster.caFile) files.push([`clusters[${index}].caFile`, cluster.caFile]);
    if (cluster.kubeconfig && cluster.kubeconfig !== 'in-cluster')
      files.push([`clusters[${index}].kubeconfig`, cluster.kubeconfig]);
  });
  if (config.keys.provider === 'pkcs11') {
    if (config.keys.module) files.push(['keys.module', config.keys.module]);
    if (config.keys.pinFile) files.push(['keys.pinFile', config.keys.pinFile]);
  }
  return files;
}

/**
 * The checks `serve` makes before it listens, without listening, generating keys or contacting
 * an issuer: the config schema, the files it names, the PIN variable, and every policy file
 * (against the configured clusters). Each problem names its field.
 */
function validateConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { problems: string[]; summary?: string } {
  const config = loadConfig({ file, env });
  const problems = unreadableFiles(config);
  const addonMissing = config.keys.provider === 'pkcs11' ? pkcs11AddonMissing() : undefined;
  if (addonMissing) problems.push(`keys.provider: ${addonMissing}`);
  if (
    config.keys.provider === 'pkcs11' &&
    config.keys.pinEnv &&
    !config.keys.pinFile &&
    !env[config.keys.pinEnv]
  ) {
    problems.push(`keys.pinEnv: the environment variable ${config.keys.pinEnv} is not set`);
  }
  const policies = checkPolicies(config);
  problems.push(...policies.problems);
  if (problems.length > 0) return { problems };
  return {
    problems,
    summary: `${config.clusters.length} cluster(s)${config.devCluster ? ' + dev cluster' : ''}, ${policies.roles} role(s), keys ${config.keys.provider}`,
  };
}

/** Each file the config names that this process cannot read, as `field: cannot read path: CODE`. */
function unreadableFiles(config: Config): string[] {
  const problems: string[] = [];
  for (const [field, path] of referencedFiles(config)) {
    try {
      accessSync(path, constants.R_OK);
    } catch (error) {
      problems.push(
        `${field}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
  }
  return problems;
}

/** Every policy file, loaded against the configured clusters (and the dev cluster), and each role's algorithm against the keys'. */
function checkPolicies(config: Config): { problems: string[]; roles: number } {
  const clusters = config.devCluster
    ? [
        ...config.clusters,
        {
          name: config.devCluster.name,
          issuer: config.devCluster.issuer,
          verify: 'jwks' as const,
          allowInsecure: false,
        },
      ]
    : config.clusters;
  try {
    const set = loadPolicySet(config.policies, { clusters });
    const problems = [...set.roles.values()]
      .filter((role) => !config.keys.algorithms.includes(role.issue.algorithm))
      .map(
        (role) =>
          `keys.algorithms: role ${role.name} signs with ${role.issue.algorithm}, which is not enabled`,
      );
    return { problems, roles: set.roles.size };
  } catch (error) {
    if (!(error instanceof PolicyLoadError)) throw error;
    return {
      problems: error.problems.map((problem) => `policies: ${formatProblem(problem)}`),
      roles: 0,
    };
  }
}

/** `tessera config validate`. */
export function registerConfigCommands(program: Command): void {
  const config = program
    .command('config')
    .description('check a config file without starting the broker');
  config
    .command('validate')
    .description(
      'run the start-up checks without starting: exit 0, or 1 naming each offending field',
    )
    .option(
      '-c, --config <file>',
      'config file (YAML or JSON); default: $TESSERA_CONFIG, else the embedded defaults',
    )
    .action((options: { config?: string }) => {
      const file = options.config ?? globalConfigFile(program);
      const result = validateConfig(file);
      const name = file ?? process.env.TESSERA_CONFIG ?? 'the embedded defaults';
      if (result.problems.length > 0) {
        process.stderr.write(`${name} is invalid:\n  ${result.problems.join('\n  ')}\n`);
        process.exitCode = 1;
      } else process.stdout.write(`${escapeControl(`${name} is valid: ${result.summary}`)}\n`);
    });
}
