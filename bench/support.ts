import { spawn, type ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';
import { freePort } from '../test/support/net.js';

export { freePort };

export interface LoadFigures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};


export async function waitForHttp(url: string, timeoutMs = 30_000, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`the process serving ${url} exited with code ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

export function startProcess(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * Load `url` with POST bodies taken round-robin from `bodies`; `rounds` runs of `seconds`
 * each, reporting the median of each figure across rounds.
 */
export async function load(url: string, bodies: string[], options: { seconds: number; rounds: number; connections: number }): Promise<LoadFigures> {
  const runs: LoadFigures[] = [];
  for (let round = 0; round < options.rounds; round++) {
    let next = 0;
    const result = await autocannon({
      url,
      connections: options.connections,
      duration: options.seconds,
      requests: [
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
        },
      ],
    });
    runs.push({ rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx + result.errors });
  }
  return {
    rps: median(runs.map((run) => run.rps)),
    p50: median(runs.map((run) => run.p50)),
    p99: median(runs.map((run) => run.p99)),
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
  };
}

/** Median seconds per call of `fn` over `rounds` batches of `iterations`. */
export function timePerCall(fn: () => void, iterations = 2000, rounds = 5): number {
  for (let i = 0; i < 200; i++) fn();
  const perCall: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    perCall.push(Number(process.hrtime.bigint() - started) / 1e9 / iterations);
  }
  return median(perCall);
}
