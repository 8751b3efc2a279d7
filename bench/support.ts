import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../test/support/net.js';

export { freePort };

export interface LoadFigures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** Requests answered (any status) across every round. */
  total: number;
  /** CPU the load generator used, where it ran in a process of its own (wrk). */
  generatorCpuSeconds?: number;
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

export async function waitForHttp(
  url: string,
  timeoutMs = 30_000,
  child?: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`the process serving ${url} exited with code ${child.exitCode}`);
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
  return spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', process.env.BENCH_STDOUT ? 'inherit' : 'ignore', 'inherit'],
  });
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Resident set size of a process in bytes (Linux `/proc`), or undefined elsewhere. */
export function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds a process has used (user + system, all its threads, so the libuv pool too), from
 * Linux `/proc`; undefined elsewhere. On a shared machine CPU per exchange is steadier than
 * throughput.
 */
export function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /s, '')
      .split(' ');
    // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
/** Pids of a process and all its descendants (Linux `/proc/PID/task/TID/children`). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (let index = 0; index < pids.length; index += 1) {
    const current = pids[index] as number;
    try {
      for (const task of readdirSync(`/proc/${current}/task`)) {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').trim();
        if (children) pids.push(...children.split(' ').map(Number));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** CPU seconds of a process and its descendants (a `--workers` primary and its workers). */
export function treeCpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let total = 0;
  for (const member of processTree(pid)) total += cpuSecondsOf(member) ?? 0;
  return total;
}
/** USER_HZ: 100 on every Linux Node supports. */
const CLOCK_TICKS = 100;

export interface LoadOptions {
  connections: number;
  /** Run for this long, or until `amount` requests were answered. */
  seconds?: number;
  amount?: number;
  /** Requests per second across all connections (autocannon corrects for coordinated omission). */
  overallRate?: number;
}

/**
 * The load generator of the closed-loop runs: wrk (Debian's `wrk`, C, one thread) where it is
 * installed, else autocannon. On two cores the generator shares the machine with the broker:
 * autocannon spends about 70 µs of CPU per request, wrk a fraction of that, which leaves the
 * broker (and `--workers 2`) the CPU it would have beside a load balancer. `BENCH_GENERATOR=
 * autocannon` forces autocannon.
 */
export const GENERATOR: 'wrk' | 'autocannon' =
  process.env.BENCH_GENERATOR !== 'autocannon' && wrkInstalled() ? 'wrk' : 'autocannon';

function wrkInstalled(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk prints its usage and exits 1 on --version: it is there.
    return (error as { status?: number }).status === 1;
  }
}

const WRK_SCRIPT = join(import.meta.dirname, 'wrk', 'post-bodies.lua');

/** The bodies as a file of lines for wrk's script, written once per set of bodies. */
function bodiesFile(bodies: string[]): string {
  const text = `${bodies.join('\n')}\n`;
  const file = join(
    tmpdir(),
    `tessera-bench-bodies-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.txt`,
  );
  if (!existsSync(file)) writeFileSync(file, text);
  return file;
}

/** One wrk run (one thread, `connections` keep-alive connections) POSTing `bodies` round-robin. */
async function fireWrk(url: string, bodies: string[], options: LoadOptions): Promise<LoadFigures> {
  const seconds = Math.max(1, Math.round(options.seconds ?? 5));
  // Through a shell that prints its own /proc stat after wrk exits: cutime + cstime there are the
  // CPU the generator used, which this process's cpuUsage() does not see.
  const stdout = await new Promise<string>((resolvePromise, reject) => {
    execFile(
      'sh',
      [
        '-c',
        'wrk "$@"; status=$?; echo; cat /proc/$$/stat; exit $status',
        'sh',
        '-t1',
        `-c${options.connections}`,
        `-d${seconds}s`,
        '--timeout',
        '10s',
        '-s',
        WRK_SCRIPT,
        url,
      ],
      { env: { ...process.env, BENCH_WRK_BODIES: bodiesFile(bodies) }, maxBuffer: 1 << 20 },
      (error, out) =>
        error ? reject(new Error('wrk failed', { cause: error })) : resolvePromise(out),
    );
  });
  const stat =
    stdout
      .trim()
      .split('\n')
      .at(-1)
      ?.replace(/^.*\) /s, '')
      .split(' ') ?? [];
  // After "pid (comm) ": cutime (field 16) and cstime (17) are at 13 and 14.
  const generatorCpuSeconds = (Number(stat[13]) + Number(stat[14])) / CLOCK_TICKS;
  const line = stdout.split('\n').find((text) => text.startsWith('{"requests"'));
  if (!line) throw new Error(`wrk printed no figures:\n${stdout}`);
  const figures = JSON.parse(line) as {
    requests: number;
    durationMicros: number;
    p50Micros: number;
    p99Micros: number;
    non2xx: number;
    socketErrors: number;
  };
  return {
    rps: figures.requests / (figures.durationMicros / 1e6),
    p50: Math.round(figures.p50Micros / 100) / 10,
    p99: Math.round(figures.p99Micros / 100) / 10,
    non2xx: figures.non2xx + figures.socketErrors,
    total: figures.requests,
    ...(Number.isFinite(generatorCpuSeconds) && { generatorCpuSeconds }),
  };
}

/**
 * One closed-loop run POSTing `bodies` round-robin: for a duration with the GENERATOR, for a
 * number of requests (or a paced rate) with autocannon.
 */
export async function fire(
  url: string,
  bodies: string[],
  options: LoadOptions,
): Promise<LoadFigures> {
  if (GENERATOR === 'wrk' && options.amount === undefined && options.overallRate === undefined)
    return fireWrk(url, bodies, options);
  let next = 0;
  const result = await autocannon({
    url,
    connections: options.connections,
    ...(options.amount !== undefined
      ? { amount: options.amount }
      : { duration: options.seconds ?? 5 }),
    ...(options.overallRate !== undefined && {
      overallRate: Math.max(1, Math.round(options.overallRate)),
    }),
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
      },
    ],
  });
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx + result.errors + result.timeouts,
    total: result.requests.total,
  };
}

/** `rounds` runs of `seconds` each; the median of each figure across rounds. */
export async function load(
  url: string,
  bodies: string[],
  options: { seconds: number; rounds: number; connections: number },
): Promise<LoadFigures> {
  const runs: LoadFigures[] = [];
  for (let round = 0; round < options.rounds; round++) runs.push(await fire(url, bodies, options));
  return {
    rps: median(runs.map((run) => run.rps)),
    p50: median(runs.map((run) => run.p50)),
    p99: median(runs.map((run) => run.p99)),
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
    total: runs.reduce((sum, run) => sum + run.total, 0),
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

/**
 * An open-loop load at a steady `rate` from `bench/paced-client.ts`, a process of its own: one
 * request falls due every 1/rate s, whatever happened to the previous ones, over at most
 * `connections` keep-alive connections, and each latency is counted from the moment its request
 * fell due (so time spent waiting for a free connection counts too). autocannon's `overallRate`
 * instead lets every connection send back to back until its share of the second is used up, then
 * idle until the next second: a burst at full load, whose queueing shows up as the latency of a
 * load it never offered.
 *
 * The first `warmupSeconds` run at the same pace but are not counted: the generator's own cold
 * start (compiling its code, the server's first answers on fresh connections) would otherwise
 * stall the first requests against any server, the node:http baseline included.
 */
export async function paced(
  url: string,
  bodies: string[],
  options: { rate: number; seconds: number; connections: number; warmupSeconds?: number },
): Promise<LoadFigures> {
  const target = new URL(url);
  const settings = {
    host: target.hostname,
    port: Number(target.port),
    path: target.pathname,
    rate: options.rate,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds ?? 0,
    connections: options.connections,
    bodiesFile: bodiesFile(bodies),
  };
  const stdout = await new Promise<string>((resolvePromise, reject) => {
    execFile(
      process.execPath,
      [
        join(import.meta.dirname, '../bin/run-ts.js'),
        join(import.meta.dirname, 'paced-client.ts'),
        JSON.stringify(settings),
      ],
      { maxBuffer: 64 << 20 },
      (error, out) =>
        error
          ? reject(new Error('the paced client failed', { cause: error }))
          : resolvePromise(out),
    );
  });
  const result = JSON.parse(stdout) as {
    latencies: number[];
    non2xx: number;
    elapsed: number;
    issued: number;
  };
  const sorted = result.latencies;
  const at = (share: number): number =>
    Math.round((sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? 0) * 10) /
    10;
  return {
    rps: sorted.length / result.elapsed,
    p50: at(0.5),
    p99: at(0.99),
    non2xx: result.non2xx,
    total: result.issued,
  };
}

/**
 * Median CPU seconds per call of `fn` (this process's user + system time): unlike wall time, it
 * stays put when a shared machine preempts the measurement.
 */
export function cpuPerCall(fn: () => void, iterations = 2000, rounds = 5): number {
  for (let i = 0; i < 200; i++) fn();
  const perCall: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = process.cpuUsage();
    for (let i = 0; i < iterations; i++) fn();
    const used = process.cpuUsage(started);
    perCall.push((used.user + used.system) / 1e6 / iterations);
  }
  return median(perCall);
}

/**
 * The broker the bench starts: the built `dist/` that the package ships (`npm run bench` builds
 * it first), not the sources through tsx, whose per-closure helpers would be counted as the
 * broker's cost.
 */
export const BROKER_CLI = join(resolve(import.meta.dirname, '..'), 'dist/cli/main.js');
