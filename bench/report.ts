import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname } from 'node:path';

export interface ScenarioResult {
  id: string;
  label: string;
  /** 1 / (t_http + the raw signature work of this kind of exchange), same run. */
  ceiling: number;
  rps?: number;
  p50?: number;
  p99?: number;
  non2xx?: number;
  total?: number;
  ratio?: number;
  /** CPU ceiling (node:http CPU per request + raw signature CPU) / the broker's CPU per exchange. */
  cpuRatio?: number;
  /** CPU time of the broker process (all threads; with --workers the primary and every worker) per exchange, µs. */
  cpuMicros?: number;
  /** Cores the broker kept busy during the measurement, and the load generator (wrk or autocannon). */
  brokerCores?: number;
  generatorCores?: number;
  skipped?: string;
}

export interface CurvePoint {
  /** Share of the maximum throughput offered. */
  share: number;
  target: number;
  rps: number;
  p50: number;
  p99: number;
  /** Below the maximum: the broker's p99 in each round, and the node:http baseline's (median) at the same pace. */
  p99Rounds?: number[];
  platformP99?: number;
  non2xx: number;
}

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  settings: {
    tokens: number;
    seconds: number;
    rounds: number;
    connections: number;
    /** The closed-loop load generator: wrk where installed, else autocannon. */
    generator?: string;
  };
  ceiling: {
    httpBaselineRps: number;
    httpBaselineP99: number;
    httpBaselineCpuMicros?: number;
    microseconds: {
      http: number;
      rs256Verify: number;
      es256Sign: number;
      rs256Sign: number;
      es256Verify: number;
    };
    /** The signature work as CPU time per call (steadier than wall time on a shared machine). */
    cpuMicroseconds?: {
      rs256Verify: number;
      es256Sign: number;
      rs256Sign: number;
      es256Verify: number;
    };
    /** The ceiling in CPU time per ES256 exchange: node:http CPU per request + RS256 verify + ES256 sign. */
    cpuMicrosPerExchange?: number;
    /** The platform ceiling: 1 / (t_http + t_verify RS256 + t_sign ES256). */
    rps: number;
    softHsmRawEs256SignPerSecond?: number;
  };
  /**
   * bench/bare-exchange-server.ts in the same rounds: node:http with the RS256 check and the ES256
   * signature of an exchange and nothing else, as a share of the same ceiling.
   */
  bareExchange?: { rps: number; p99: number; ratio: number; cpuMicros?: number };
  scenarios: ScenarioResult[];
  headline?: {
    id: string;
    loadCurve: CurvePoint[];
    rss: {
      afterExchanges: number;
      bytes?: number;
      laterExchanges: number;
      laterBytes?: number;
      heapUsed?: number;
      laterHeapUsed?: number;
    };
  };
  workersSupported: boolean;
}

const machine = () => ({
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  loadAverage: loadavg().map((value) => Number(value.toFixed(2))),
});

const fixed = (value: number | undefined, digits = 0) =>
  value === undefined ? 'n/a' : value.toFixed(digits);
const mib = (bytes: number | undefined) =>
  bytes === undefined ? 'n/a' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export function printReport(report: BenchReport): void {
  printCeiling(report);
  printScenarios(report);
  printComparisons(report);
  printHeadline(report);
}

function printCeiling(report: BenchReport): void {
  const { microseconds: us } = report.ceiling;
  const host = machine();
  console.log(
    `\nTessera exchange bench, ${report.startedAt} — ${host.cpu} × ${host.cores}, Node ${host.node}, load average ${host.loadAverage.join(' ')}`,
  );
  console.log(
    `${report.settings.tokens} distinct RS256 subject tokens, ${report.settings.connections} connections, load from ${report.settings.generator ?? 'autocannon'}; median of ${report.settings.rounds} interleaved rounds × ${report.settings.seconds} s`,
  );
  console.log(`\nPlatform ceiling (same run, one core):`);
  console.log(
    `  node:http answering the same requests  ${fixed(report.ceiling.httpBaselineRps).padStart(7)} req/s  → t_http ${fixed(us.http, 1)} µs`,
  );
  console.log(
    `  raw node:crypto RS256 verify           ${fixed(us.rs256Verify, 1).padStart(7)} µs`,
  );
  console.log(
    `  raw node:crypto ES256 sign             ${fixed(us.es256Sign, 1).padStart(7)} µs   (RS256 sign ${fixed(us.rs256Sign, 1)} µs, ES256 verify ${fixed(us.es256Verify, 1)} µs)`,
  );
  console.log(
    `  ceiling 1/(t_http+t_verify+t_sign)     ${fixed(report.ceiling.rps).padStart(7)} req/s`,
  );
  if (report.ceiling.softHsmRawEs256SignPerSecond)
    console.log(
      `  SoftHSM2 raw ES256 C_Sign               ${fixed(report.ceiling.softHsmRawEs256SignPerSecond).padStart(7)} /s`,
    );

  if (report.ceiling.cpuMicrosPerExchange !== undefined) {
    console.log(
      `  ceiling in CPU time per ES256 exchange   ${fixed(report.ceiling.cpuMicrosPerExchange, 1).padStart(7)} µs  (node:http CPU + raw verify + sign CPU)`,
    );
  }
  const bare = report.bareExchange;
  if (bare)
    console.log(
      `  bare exchange: node:http + that verify and sign, nothing else  ${fixed(bare.rps)} req/s = ${fixed(bare.ratio, 2)} of the ceiling, ${fixed(bare.cpuMicros)} µs CPU`,
    );
}

function printScenarios(report: BenchReport): void {
  const head = ['req/s', 'p50 ms', 'p99 ms', 'ceiling', 'ratio', 'CPU µs', 'CPU ratio', 'non-2xx'];
  console.log(
    `\n  ${'scenario'.padEnd(40)} ${head.map((name, i) => name.padStart(i === 4 ? 6 : i === 6 ? 9 : 8)).join(' ')}`,
  );
  for (const row of report.scenarios) {
    if (row.skipped) {
      console.log(`  ${row.label.padEnd(40)} ${'n/a'.padStart(8)}   (${row.skipped})`);
      continue;
    }
    const cells = [
      fixed(row.rps),
      fixed(row.p50),
      fixed(row.p99),
      fixed(row.ceiling),
      fixed(row.ratio, 2),
      fixed(row.cpuMicros),
      fixed(row.cpuRatio, 2),
      String(row.non2xx),
    ];
    console.log(
      `  ${row.label.padEnd(40)} ${cells.map((cell, i) => cell.padStart(i === 4 ? 6 : i === 6 ? 9 : 8)).join(' ')}`,
    );
  }
  console.log(
    '  (ceiling per row: RS256 rows sign with RS256; X.509 rows add the CSR signature check. CPU µs: broker process,',
  );
  console.log(
    `   all threads, per exchange; the node:http baseline used ${fixed(report.ceiling.httpBaselineCpuMicros)} µs per request)`,
  );
}

function printComparisons(report: BenchReport): void {
  const byId = new Map(report.scenarios.map((row) => [row.id, row]));
  const one = byId.get('jwt-es256')?.rps;
  const redis = byId.get('jwt-es256-redis')?.rps;
  const hsm = byId.get('jwt-es256-hsm')?.rps;
  const workers = byId.get('jwt-es256-workers2')?.rps;
  const raw = report.ceiling.softHsmRawEs256SignPerSecond;
  console.log('');
  if (one && redis)
    console.log(`  Redis vs in-memory (JWT ES256):               ${fixed((redis / one) * 100)} %`);
  if (hsm && raw)
    console.log(`  HSM-signed JWT vs SoftHSM2 raw ES256 sign:     ${fixed((hsm / raw) * 100)} %`);
  console.log(
    `  --workers 2 vs one process:                   ${one && workers ? `${fixed(workers / one, 2)}×` : 'n/a'}`,
  );
  const oneRow = byId.get('jwt-es256');
  const workersRow = byId.get('jwt-es256-workers2');
  if (oneRow?.cpuMicros && workersRow?.cpuMicros) {
    // Exchanges per broker CPU-second: whether a second process loses efficiency, whatever cores it got.
    console.log(
      `  exchanges per broker CPU-second:              one process ${fixed(1e6 / oneRow.cpuMicros)}, --workers 2 ${fixed(1e6 / workersRow.cpuMicros)}`,
    );
    console.log(
      `  cores busy (broker / load generator):          one process ${fixed(oneRow.brokerCores, 2)} / ${fixed(oneRow.generatorCores, 2)}, ` +
        `--workers 2 ${fixed(workersRow.brokerCores, 2)} / ${fixed(workersRow.generatorCores, 2)}`,
    );
  }
}

function printHeadline(report: BenchReport): void {
  const byId = new Map(report.scenarios.map((row) => [row.id, row]));
  if (report.headline) {
    console.log(
      `\nLoad curve (${byId.get(report.headline.id)?.label}; offered rate as a share of the maximum):`,
    );
    for (const point of report.headline.loadCurve) {
      const rounds = point.p99Rounds
        ? ` (rounds ${point.p99Rounds.map((p99) => fixed(p99)).join(', ')})`
        : '';
      const platform =
        point.platformP99 !== undefined
          ? `  node:http at this pace p99 ${fixed(point.platformP99)} ms`
          : '';
      console.log(
        `  ${`${fixed(point.share * 100)} %`.padStart(5)}  offered ${fixed(point.target).padStart(6)}/s  served ${fixed(point.rps).padStart(6)}/s  p50 ${fixed(point.p50).padStart(4)} ms  p99 ${fixed(point.p99).padStart(4)} ms${rounds}${platform}`,
      );
    }
    const { rss } = report.headline;
    const growth =
      rss.bytes && rss.laterBytes
        ? ` (${rss.laterBytes >= rss.bytes ? '+' : ''}${fixed(((rss.laterBytes - rss.bytes) / rss.bytes) * 100, 1)} %)`
        : '';
    console.log(
      `\nRSS: ${mib(rss.bytes)} after ${rss.afterExchanges.toLocaleString('en')} exchanges, ${mib(rss.laterBytes)} after ${rss.laterExchanges.toLocaleString('en')}${growth}`,
    );
    console.log(
      `V8 heap in use (the broker's /metrics): ${mib(rss.heapUsed)} after ${rss.afterExchanges.toLocaleString('en')}, ${mib(rss.laterHeapUsed)} after ${rss.laterExchanges.toLocaleString('en')}`,
    );
  }
}

export function writeReport(report: BenchReport, file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ machine: machine(), ...report }, null, 2)}\n`);
  console.log(`\nwritten: ${file}`);
}
