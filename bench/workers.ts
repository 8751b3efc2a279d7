import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadDevCluster } from '../src/dev-cluster/index.js';
import {
  BROKER_CLI,
  freePort,
  load,
  startProcess,
  stopProcess,
  waitForHttp,
  type LoadFigures,
} from './support.js';

/**
 * `tessera serve --workers N`: exchange throughput with 1 and 2 workers sharing one listener and
 * one key directory, with distinct dev-cluster subject tokens. The gain is bounded by the cores
 * this machine gives the run (and the load generator takes one of them).
 */
const ROOT = resolve(import.meta.dirname, '..');
const TOKENS = Number(process.env.BENCH_TOKENS ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

async function runWorkers(dir: string, workers: number, bodies: string[]): Promise<LoadFigures> {
  const port = await freePort();
  const file = join(dir, `config-${workers}.yaml`);
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port },
      audience: 'tessera',
      devCluster: { keyDir: join(dir, 'dev-cluster') },
      policies: join(ROOT, 'policies'),
      keys: { provider: 'local', dir: join(dir, 'keys') },
      x509: { dir: join(dir, 'ca') },
      logging: { level: 'warn' },
    }),
  );
  const broker = startProcess([
    BROKER_CLI,
    'serve',
    '--config',
    file,
    '--workers',
    String(workers),
  ]);
  try {
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, 60_000, broker);
    // Every worker must be up before the load starts: give the last one a moment past the first answer.
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 2_000 * (workers - 1)));
    return await load(`http://127.0.0.1:${port}/v1/token`, bodies, {
      seconds: SECONDS,
      rounds: ROUNDS,
      connections: CONNECTIONS,
    });
  } finally {
    await stopProcess(broker);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-workers-'));
try {
  const dev = await loadDevCluster(
    { name: 'dev', issuer: 'https://dev-cluster.tessera.local', keyDir: join(dir, 'dev-cluster') },
    'tessera',
  );
  const tokens = await Promise.all(
    Array.from({ length: TOKENS }, (_, i) =>
      dev.signToken({
        namespace: 'default',
        serviceAccount: `sa-${i}`,
        audience: 'tessera',
        ttlSeconds: 3600,
      }),
    ),
  );
  const bodies = tokens.map((token) =>
    new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      resource: 'demo',
    }).toString(),
  );
  const one = await runWorkers(dir, 1, bodies);
  const two = await runWorkers(dir, 2, bodies);
  const row = (name: string, figures: LoadFigures) =>
    `  ${name.padEnd(34)} ${figures.rps.toFixed(0).padStart(8)} req/s   p50 ${String(figures.p50).padStart(4)} ms   p99 ${String(figures.p99).padStart(4)} ms   non-2xx ${figures.non2xx}`;
  console.log(
    `\nWorkers (${TOKENS} distinct dev-cluster tokens, ${CONNECTIONS} connections, median of ${ROUNDS} × ${SECONDS}s, ${availableParallelism()} CPUs)`,
  );
  console.log(row('serve --workers 1', one));
  console.log(row('serve --workers 2', two));
  console.log(`  scaling 1 → 2 workers              ${(two.rps / one.rps).toFixed(2)}×`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
