import { InvalidArgumentError, type Command } from 'commander';
import { escapeControl, escapeLines } from '../terminal/index.js';

interface Readiness {
  status?: unknown;
  checks?: {
    keys?: unknown;
    policies?: { roles?: unknown };
    cache?: { kind?: unknown; shared?: unknown };
    clusters?: unknown;
  };
}

const url = (value: string): URL => {
  if (!URL.canParse(value))
    throw new InvalidArgumentError('must be a URL such as http://127.0.0.1:8080');
  return new URL(value);
};

/** One line a check, in words, from the /readyz body; fields it does not know are left out. */
function describeReadiness(body: Readiness, httpStatus: number): string[] {
  const ready = httpStatus === 200 && body.status === 'ready';
  const lines = [
    ready
      ? 'ready: the broker is serving token exchanges'
      : 'NOT ready: token exchanges are refused (503)',
  ];
  const checks = body.checks ?? {};
  if (checks.keys !== undefined)
    lines.push(`signing keys: ${checks.keys === 'ok' ? 'usable' : 'unavailable'}`);
  if (typeof checks.policies?.roles === 'number')
    lines.push(`policies: ${checks.policies.roles} role(s) loaded`);
  if (checks.cache && typeof checks.cache.kind === 'string') {
    const shared =
      checks.cache.kind === 'memory'
        ? ''
        : checks.cache.shared === true
          ? ', reachable'
          : ', unreachable (serving from memory)';
    lines.push(`cache: ${checks.cache.kind}${shared}`);
  }
  if (Array.isArray(checks.clusters))
    for (const cluster of checks.clusters as unknown[]) lines.push(clusterLine(cluster));
  return lines;
}

function clusterLine(status: unknown): string {
  const { cluster, ready, stale, lastError } = (status ?? {}) as {
    cluster?: unknown;
    ready?: unknown;
    stale?: unknown;
    lastError?: unknown;
  };
  const because = typeof lastError === 'string' ? ` (last refresh: ${lastError})` : '';
  const words =
    ready !== true
      ? `no usable keys${because}`
      : stale === true
        ? `keys usable but stale, the issuer is unreachable${because}`
        : 'keys usable';
  return `cluster ${typeof cluster === 'string' ? cluster : '?'}: ${words}`;
}

/** `tessera status`: readiness of a running broker, in words; exit 0 when ready, 1 when not or unreachable. */
export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description("print a running broker's readiness")
    .requiredOption(
      '--endpoint <url>',
      'the broker (or its admin listener), e.g. http://127.0.0.1:8080',
      url,
    )
    .option('--timeout <seconds>', 'give up after this long', (value) => Number(value), 5)
    .action(async (options: { endpoint: URL; timeout: number }) => {
      const target = new URL(
        'readyz',
        options.endpoint.href.endsWith('/')
          ? options.endpoint
          : new URL(`${options.endpoint.href}/`),
      );
      let response: Response;
      try {
        response = await fetch(target, {
          signal: AbortSignal.timeout(options.timeout * 1000),
          headers: { accept: 'application/json' },
        });
      } catch (error) {
        const cause =
          error instanceof Error && error.cause instanceof Error
            ? error.cause.message
            : error instanceof Error
              ? error.message
              : String(error);
        process.stderr.write(`unreachable: ${escapeControl(`${target.href}: ${cause}`)}\n`);
        process.exitCode = 1;
        return;
      }
      const body = (await response.json().catch(() => ({}))) as Readiness;
      const lines = describeReadiness(body, response.status);
      // The answer comes from whatever listens at --endpoint: printed escaped.
      process.stdout.write(escapeLines(lines));
      process.exitCode = response.status === 200 ? 0 : 1;
    });
}
