import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { createMemoryCache } from '../cache/index.js';
import { factsFromPodObject } from '../attestation/index.js';
import { ConfigError, loadConfig, type ClusterConfig, type Config } from '../config/index.js';
import { TOKEN_TYPE_JWT } from '../constants.js';
import { loadDevCluster } from '../dev-cluster/index.js';
import { isTesseraError } from '../errors.js';
import { silentLogger } from '../observability/index.js';
import { escapeControl, escapeErrorMessage, escapeJson } from '../terminal/index.js';
import {
  createSubjectTokenVerifier,
  decodeUnverified,
  type WorkloadIdentity,
} from '../verifiers/index.js';
import {
  clusterFor,
  explainJson,
  formatExplain,
  formatProblem,
  formatWhoCan,
  lintDirectory,
  loadPolicySet,
  offlineIdentity,
  PolicyLoadError,
  policyJsonSchema,
  whoCan,
  type PolicySet,
} from '../trust-policies/index.js';

/** Where commands write; tests pass their own. Exit codes: 0 ok, 1 errors (lint; warnings too with --strict) or deny, 2 usage or I/O. */
export interface PolicyCliIo {
  out(text: string): void;
  err(text: string): void;
  exit(code: number): void;
}

const processIo: PolicyCliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  exit: (code) => {
    process.exitCode = code;
  },
};

/** Configured clusters plus the dev cluster, as names and issuers (no keys loaded). */
function knownClusters(config: Config): ClusterConfig[] {
  const dev = config.devCluster;
  const devEntry: ClusterConfig[] = dev
    ? [{ name: dev.name, issuer: dev.issuer, verify: 'jwks', allowInsecure: false }]
    : [];
  return [...config.clusters, ...devEntry];
}

/** The config given with --config (or TESSERA_CONFIG); `undefined` when none was. */
function configOf(command: Command): Config | undefined {
  const file = command.optsWithGlobals<{ config?: string }>().config ?? process.env.TESSERA_CONFIG;
  return file ? loadConfig({ file }) : undefined;
}

/** The given config, else the embedded defaults (the dev cluster), for naming clusters and checking signatures. */
const effectiveConfig = (command: Command): Config => configOf(command) ?? loadConfig({ env: {} });

/** `--at`: ISO 8601 or epoch seconds, to seconds. */
function parseAt(value: string): number {
  const seconds = /^\d+$/.test(value) ? Number(value) : Date.parse(value) / 1000;
  if (!Number.isFinite(seconds))
    throw new InvalidArgumentError('must be an ISO 8601 time or epoch seconds');
  return Math.floor(seconds);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function loadSet(dir: string, io: PolicyCliIo): PolicySet | undefined {
  try {
    return loadPolicySet(dir);
  } catch (error) {
    io.err(
      `${error instanceof PolicyLoadError ? error.problems.map(formatProblem).join('\n') : escapeErrorMessage(error)}\n`,
    );
    io.exit(2);
    return undefined;
  }
}

/**
 * Why a token would be refused, for the explain trace: the client-safe description and, when the
 * verifier gave one, its enumerated reason (the same token the broker logs), never the log detail.
 *
 * @example refusalSummary(invalidRequest('subject_token is expired', { reason: 'token_expired' })) === 'subject_token is expired [token_expired]'
 */
export function refusalSummary(error: unknown): string {
  if (!isTesseraError(error)) return error instanceof Error ? error.message : String(error);
  return `${error.description} [${error.reason}]`;
}

async function signatureLine(token: string, config: Config, at: number): Promise<string> {
  const dev = config.devCluster
    ? await loadDevCluster(config.devCluster, config.audience)
    : undefined;
  const clusters = dev ? [...config.clusters, dev.cluster] : config.clusters;
  const verifier = createSubjectTokenVerifier({
    clusters,
    audience: config.audience,
    cache: createMemoryCache(),
    logger: silentLogger(),
    now: () => at * 1000,
  });
  try {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('timed out reaching the issuer')), 5000).unref(),
    );
    const identity = await Promise.race([verifier.verify(token), timeout]);
    return `signature and claims verify (cluster ${identity.cluster})`;
  } catch (error) {
    return `would NOT verify: ${refusalSummary(error)}`;
  } finally {
    await verifier.close();
  }
}

interface ExplainOptions {
  role: string;
  token?: string;
  claims?: string;
  pod?: string;
  cluster?: string;
  audience?: string[];
  scope?: string[];
  tokenType: string;
  policies?: string;
  at?: number;
  json?: boolean;
}

/** What explain evaluates: a token's claims (and what its signature check says) or a claim file's. */
interface Subject {
  claims: Record<string, unknown>;
  signature?: string;
}

type SubjectSource = { token: string } | { claims: string };

const isClaimSet = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

async function readSubject(source: SubjectSource, config: Config, now: number): Promise<Subject> {
  if ('token' in source) {
    const token = readFileSync(source.token, 'utf8').trim();
    return {
      claims: decodeUnverified(token).claims,
      signature: await signatureLine(token, config, now),
    };
  }
  const claims: unknown = parseYaml(readFileSync(source.claims, 'utf8'));
  if (!isClaimSet(claims)) throw new Error('claims must be a JSON object');
  return { claims };
}

/** Prints a usage or input problem and exits 2; returns undefined so callers can `return fail(…)`. */
function fail(io: PolicyCliIo, message: string): undefined {
  io.err(`${message}\n`);
  io.exit(2);
  return undefined;
}

/** `--token FILE` or `--claims FILE`: exactly one of them. */
function sourceOf(options: ExplainOptions): SubjectSource | undefined {
  if (options.token && !options.claims) return { token: options.token };
  if (options.claims && !options.token) return { claims: options.claims };
  return undefined;
}

/** The subject's claims, or undefined once the problem is printed. */
async function subjectOf(
  source: SubjectSource,
  config: Config,
  now: number,
  io: PolicyCliIo,
): Promise<Subject | undefined> {
  try {
    return await readSubject(source, config, now);
  } catch (error) {
    return fail(
      io,
      `policy explain: ${isTesseraError(error) ? escapeControl(error.description) : escapeErrorMessage(error)}`,
    );
  }
}

/** `identity` with the facts pod attestation would derive from `--pod FILE`, or undefined once the problem is printed. */
function withPodFacts(
  identity: WorkloadIdentity,
  podFile: string | undefined,
  io: PolicyCliIo,
): WorkloadIdentity | undefined {
  if (!podFile) return identity;
  try {
    return {
      ...identity,
      attestation: factsFromPodObject(parseYaml(readFileSync(podFile, 'utf8'))).facts,
    };
  } catch (error) {
    return fail(
      io,
      `policy explain: --pod ${escapeControl(podFile)}: ${escapeErrorMessage(error)}`,
    );
  }
}

async function explain(options: ExplainOptions, command: Command, io: PolicyCliIo): Promise<void> {
  const source = sourceOf(options);
  if (!source)
    return void fail(io, 'policy explain: give exactly one of --token FILE or --claims FILE');
  const config = effectiveConfig(command);
  const set = loadSet(options.policies ?? config.policies, io);
  if (!set) return;
  const role = set.roles.get(options.role);
  if (!role) {
    return void fail(
      io,
      escapeControl(
        `policy explain: no role "${options.role}" (known: ${[...set.roles.keys()].join(', ') || 'none'})`,
      ),
    );
  }
  const now = options.at ?? Math.floor(Date.now() / 1000);
  const subject = await subjectOf(source, config, now, io);
  if (!subject) return;
  const { claims, signature } = subject;
  const identity = withPodFacts(
    offlineIdentity(claims, clusterFor(claims, knownClusters(config), options.cluster)),
    options.pod,
    io,
  );
  if (!identity) return;
  const audience = options.audience?.length ? options.audience : role.issue.audiences.slice(0, 1);
  const decision = set.decide(role, {
    identity,
    request: { audience, scope: options.scope ?? [], tokenType: options.tokenType },
    now,
  });
  if (options.json)
    io.out(`${escapeJson(JSON.stringify(explainJson(role, decision, signature), null, 2))}\n`);
  else
    io.out(
      formatExplain(set, role, decision, {
        identity,
        audience,
        tokenType: options.tokenType,
        now,
        ...(signature ? { signature } : {}),
      }),
    );
  io.exit(decision.decision === 'allow' ? 0 : 1);
}

/**
 * `tessera policy lint|explain|who-can|schema`.
 *
 * @example registerPolicyCommands(program);
 */
export function registerPolicyCommands(program: Command, io: PolicyCliIo = processIo): void {
  const policy = program.command('policy').description('lint, explain and review trust policies');

  policy
    .command('lint')
    .description(
      'validate every policy file; prints file:line:col: message per problem, then the policyVersion; exit 1 on errors (and on warnings with --strict)',
    )
    .argument('[dir]', 'policy directory (default: the config’s policies, else ./policies)')
    .option(
      '-c, --config <file>',
      'config file: Principals must then name a configured cluster, IRSA :aud conditions an audience it accepts',
    )
    .option('--strict', 'exit 1 on warnings too')
    .action((dir: string | undefined, options: { strict?: boolean }, command: Command) =>
      lint(dir, options, command, io),
    );

  policy
    .command('explain')
    .description('run the evaluator offline and print the decision with its full trace')
    .requiredOption('--role <role>', 'the role to evaluate')
    .option('--token <file>', 'a subject token (its signature is reported, not required)')
    .option('--claims <file>', 'a claim set (JSON or YAML)')
    .option(
      '--pod <file>',
      'a Pod object (or a List with its Node and ReplicaSet/Job), as pod attestation would read it',
    )
    .option('--cluster <name>', 'the cluster the token comes from (default: by iss)')
    .option(
      '--audience <aud>',
      'requested audience (repeatable; default: the role’s first)',
      collect,
    )
    .option('--scope <scope>', 'requested scope (repeatable)', collect)
    .option('--token-type <type>', 'requested token type', TOKEN_TYPE_JWT)
    .option('--policies <dir>', 'policy directory')
    .option('--at <time>', 'evaluate at this time (ISO 8601 or epoch seconds)', parseAt)
    .option('--json', 'print {decision, decidedBy, statements} as JSON')
    .option(
      '-c, --config <file>',
      'config file (clusters, to name the cluster and check the signature)',
    )
    .action((options: ExplainOptions, command: Command) => explain(options, command, io));

  policy
    .command('who-can')
    .description('list which clusters, namespaces and service accounts can obtain a role')
    .requiredOption('--role <role>', 'the role')
    .option('--policies <dir>', 'policy directory')
    .option('--json', 'print as JSON')
    .option('-c, --config <file>', 'config file')
    .action((options: WhoCanOptions, command: Command) => printWhoCan(options, command, io));

  policy
    .command('schema')
    .description('print the JSON Schema of policy files (for editors)')
    .option('--out <file>', 'write it to a file instead')
    .action((options: { out?: string }) => {
      const text = `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
      if (options.out) writeFileSync(options.out, text);
      else io.out(text);
      io.exit(0);
    });
}

/** `policy lint`: every problem as file:line:col, then the policyVersion; exit 1 on errors. */
function lint(
  dir: string | undefined,
  options: { strict?: boolean },
  command: Command,
  io: PolicyCliIo,
): void {
  let config: Config | undefined;
  try {
    config = configOf(command);
  } catch (error) {
    // The config's own problems (two clusters that are one issuer to IRSA forms…) are findings too.
    if (!(error instanceof ConfigError)) throw error;
    io.err(`policy lint: ${escapeErrorMessage(error)}\n`);
    return io.exit(1);
  }
  const target = dir ?? config?.policies ?? './policies';
  let result;
  try {
    result = lintDirectory(
      target,
      config ? { clusters: knownClusters(config), audience: config.audience } : {},
    );
  } catch (error) {
    io.err(
      `${escapeControl(`policy lint: cannot read ${target}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)}\n`,
    );
    return io.exit(2);
  }
  for (const problem of result.problems) io.out(`${formatProblem(problem)}\n`);
  // The digest the broker logs and puts in every audit event, to tie decisions to this commit.
  if (result.version) io.out(`policyVersion: ${result.version}\n`);
  const errors = result.problems.filter((problem) => problem.severity === 'error').length;
  if (result.problems.length > 0)
    io.err(
      `${errors} error(s), ${result.problems.length - errors} warning(s) in ${result.files.length} file(s)\n`,
    );
  // Warnings are advice: every file is still valid, so they fail only when asked to.
  io.exit(errors > 0 || (options.strict === true && result.problems.length > 0) ? 1 : 0);
}

interface WhoCanOptions {
  role: string;
  policies?: string;
  json?: boolean;
}

/** `policy who-can`: the clusters, namespaces and service accounts a role's trust policy admits. */
function printWhoCan(options: WhoCanOptions, command: Command, io: PolicyCliIo): void {
  const config = configOf(command);
  const set = loadSet(options.policies ?? config?.policies ?? './policies', io);
  if (!set) return;
  const role = set.roles.get(options.role);
  if (!role) {
    io.err(`${escapeControl(`policy who-can: no role "${options.role}"`)}\n`);
    return io.exit(2);
  }
  const result = whoCan(set, role);
  io.out(options.json ? `${escapeJson(JSON.stringify(result, null, 2))}\n` : formatWhoCan(result));
  io.exit(0);
}
