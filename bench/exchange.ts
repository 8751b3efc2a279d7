import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  checkExchange,
  cliSupportsWorkers,
  startBroker,
  type BrokerOptions,
  type KeysConfig,
} from './broker.js';
import {
  measureCrypto,
  measureHttpBaseline,
  measureSoftHsmSign,
  type CryptoTimes,
} from './ceiling.js';
import { createFixtures, type Fixtures } from './fixtures.js';
import {
  printReport,
  writeReport,
  type BenchReport,
  type CurvePoint,
  type ScenarioResult,
} from './report.js';
import {
  cpuSecondsOf,
  fire,
  freePort,
  load,
  paced,
  rssOf,
  treeCpuSecondsOf,
  type LoadFigures,
} from './support.js';

/**
 * `npm run bench`: token-exchange throughput of `tessera serve` child processes under
 * autocannon, beside the platform ceiling measured in the same run, a load curve, and RSS
 * after 10,000 and 100,000 exchanges. Prints and writes bench/results/latest.json; asserts
 * nothing. The machine may be shared: compare the ratios of one run, not absolute figures.
 */
const TOKENS = Number(process.env.BENCH_TOKENS ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const RSS_TOTAL = Number(process.env.BENCH_RSS_EXCHANGES ?? 100_000);
const RSS_FIRST = Math.min(10_000, RSS_TOTAL);
/** `BENCH_PROFILE=DIR` writes a V8 CPU profile of every broker there (open in Chrome DevTools). */
const PROFILE_DIR = process.env.BENCH_PROFILE ? resolve(process.env.BENCH_PROFILE) : undefined;
/** `BENCH_SCENARIOS=jwt-es256,x509` runs only those. */
const ONLY = process.env.BENCH_SCENARIOS?.split(',');
const RESULTS = resolve(import.meta.dirname, 'results', 'latest.json');

type Kind = 'es256' | 'rs256' | 'x509';

interface Scenario {
  id: string;
  label: string;
  kind: Kind;
  keys: 'local' | 'pkcs11';
  redis?: boolean;
  workers?: number;
  /** The reference scenario: also load curve and RSS. */
  headline?: boolean;
}

const SCENARIOS: Scenario[] = [
  { id: 'jwt-es256', label: 'JWT ES256, local keys', kind: 'es256', keys: 'local', headline: true },
  { id: 'jwt-rs256', label: 'JWT RS256, local keys', kind: 'rs256', keys: 'local' },
  {
    id: 'jwt-es256-redis',
    label: 'JWT ES256, local keys, Redis',
    kind: 'es256',
    keys: 'local',
    redis: true,
  },
  { id: 'jwt-es256-hsm', label: 'JWT ES256, SoftHSM2 keys', kind: 'es256', keys: 'pkcs11' },
  { id: 'x509', label: 'X.509-SVID from a CSR, local CA key', kind: 'x509', keys: 'local' },
  {
    id: 'x509-redis',
    label: 'X.509-SVID, local CA key, Redis',
    kind: 'x509',
    keys: 'local',
    redis: true,
  },
  {
    id: 'jwt-es256-workers2',
    label: 'JWT ES256, local keys, --workers 2',
    kind: 'es256',
    keys: 'local',
    workers: 2,
  },
];

/** 1 / (t_http + the signature work of one exchange of this kind), in exchanges per second. */
function ceilingFor(kind: Kind, tHttp: number, times: CryptoTimes): number {
  if (kind === 'rs256') return 1 / (tHttp + times.rs256Verify + times.rs256Sign);
  if (kind === 'x509') return 1 / (tHttp + times.rs256Verify + times.es256Verify + times.es256Sign);
  return 1 / (tHttp + times.rs256Verify + times.es256Sign);
}

/**
 * The same ceiling in CPU time: the node:http baseline's CPU per request plus the raw signature
 * work, in µs. Its ratio to the broker's CPU per exchange does not move with what else the
 * machine runs, where throughput does.
 */
function cpuCeilingMicros(
  kind: Kind,
  httpCpuMicros: number | undefined,
  times: CryptoTimes,
): number | undefined {
  if (httpCpuMicros === undefined) return undefined;
  const { cpu } = times;
  if (kind === 'rs256') return httpCpuMicros + (cpu.rs256Verify + cpu.rs256Sign) * 1e6;
  if (kind === 'x509')
    return httpCpuMicros + (cpu.rs256Verify + cpu.es256Verify + cpu.es256Sign) * 1e6;
  return httpCpuMicros + (cpu.rs256Verify + cpu.es256Sign) * 1e6;
}

async function startRedis(): Promise<{ url: string; stop: () => void } | undefined> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  await new Promise((resolvePromise) => setTimeout(resolvePromise, 500));
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

async function softHsm(): Promise<
  { keys: KeysConfig; env: NodeJS.ProcessEnv; rawSignRate: number; cleanup(): void } | string
> {
  const { createSoftHsmToken, softHsmMissing } = await import('../test/support/softhsm.js');
  const missing = softHsmMissing();
  if (missing) return missing;
  const token = createSoftHsmToken({ label: 'tessera-bench' });
  return {
    keys: {
      provider: 'pkcs11',
      module: token.module,
      tokenLabel: token.label,
      pinEnv: 'TESSERA_BENCH_PIN',
    },
    env: { TESSERA_BENCH_PIN: token.pin, SOFTHSM2_CONF: process.env.SOFTHSM2_CONF },
    rawSignRate: measureSoftHsmSign(token),
    cleanup: () => token.cleanup(),
  };
}

/** V8 heap in use, from the broker's own /metrics (what RSS holds beyond it is allocator headroom). */
async function heapUsedOf(url: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const match = /^tessera_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

const pause = (ms: number) => new Promise((resolvePromise) => setTimeout(resolvePromise, ms));

/** Until a process tree uses less than a fifth of a core over half a second (start-up done), at most 60 s. */
async function waitUntilIdle(pid: number | undefined): Promise<void> {
  const deadline = Date.now() + 60_000;
  let before = treeCpuSecondsOf(pid) ?? 0;
  while (Date.now() < deadline) {
    await pause(500);
    const now = treeCpuSecondsOf(pid) ?? 0;
    if (now - before < 0.1) return;
    before = now;
  }
}

/** The headline broker also serves the load curve and the RSS figures (counted from its start). */
async function headlineExtras(
  url: string,
  pid: number | undefined,
  bodies: string[],
  max: number,
  served: number,
) {
  const curve: CurvePoint[] = [];
  for (const share of [0.25, 0.5, 0.75, 1]) {
    const target = max * share;
    // Below the maximum, an open-loop steady pace; at the maximum, as many as the broker answers.
    const figures =
      share < 1
        ? await paced(`${url}/v1/token`, bodies, {
            rate: target,
            seconds: SECONDS,
            connections: CONNECTIONS,
          })
        : await fire(`${url}/v1/token`, bodies, { connections: CONNECTIONS, seconds: SECONDS });
    served += figures.total;
    curve.push({
      share,
      target,
      rps: figures.rps,
      p50: figures.p50,
      p99: figures.p99,
      non2xx: figures.non2xx,
    });
  }
  if (served < RSS_TOTAL)
    served += (
      await fire(`${url}/v1/token`, bodies, {
        connections: CONNECTIONS,
        amount: RSS_TOTAL - served,
      })
    ).total;
  await pause(1000);
  return { curve, rssAfterTotal: rssOf(pid), heapAfterTotal: await heapUsedOf(url), served };
}

async function runScenario(
  fixtures: Fixtures,
  scenario: Scenario,
  options: Omit<BrokerOptions, 'name'>,
): Promise<{
  figures: LoadFigures & { cpuMicros?: number; brokerCores?: number; generatorCores?: number };
  extras?: Awaited<ReturnType<typeof headlineExtras>> & {
    rssAfterFirst?: number;
    heapAfterFirst?: number;
    first: number;
  };
}> {
  const broker = await startBroker(fixtures, { ...options, name: scenario.id });
  try {
    const bodies = fixtures.bodies[scenario.kind];
    const url = `${broker.url}/v1/token`;
    // Workers start one after the other: measure once every one of them has settled.
    if (scenario.workers) await waitUntilIdle(broker.child.pid);
    await checkExchange(broker.url, bodies[0] as string);
    let served = 1;
    let rssAfterFirst: number | undefined;
    let heapAfterFirst: number | undefined;
    if (scenario.headline) {
      // The first 10,000 exchanges are the warm-up: JIT, pools and caches settle.
      served += (await fire(url, bodies, { connections: CONNECTIONS, amount: RSS_FIRST - served }))
        .total;
      await pause(1000);
      rssAfterFirst = rssOf(broker.child.pid);
      heapAfterFirst = await heapUsedOf(broker.url);
    } else served += (await fire(url, bodies, { connections: CONNECTIONS, seconds: 1 })).total;
    // With --workers the primary's CPU and every worker's count; the load generator (this
    // process, autocannon) shares the same cores, so its share is reported beside them.
    const brokerCpu = () =>
      scenario.workers ? treeCpuSecondsOf(broker.child.pid) : cpuSecondsOf(broker.child.pid);
    const cpuBefore = brokerCpu();
    const generatorBefore = process.cpuUsage();
    const wallBefore = performance.now();
    const measured = await load(url, bodies, {
      seconds: SECONDS,
      rounds: ROUNDS,
      connections: CONNECTIONS,
    });
    const wall = (performance.now() - wallBefore) / 1000;
    const generator = process.cpuUsage(generatorBefore);
    const cpuAfter = brokerCpu();
    const figures = {
      ...measured,
      generatorCores: (generator.user + generator.system) / 1e6 / wall,
      ...(cpuAfter !== undefined &&
        cpuBefore !== undefined && {
          cpuMicros: ((cpuAfter - cpuBefore) / measured.total) * 1e6,
          brokerCores: (cpuAfter - cpuBefore) / wall,
        }),
    };
    served += figures.total;
    if (!scenario.headline) return { figures };
    const extras = await headlineExtras(broker.url, broker.child.pid, bodies, figures.rps, served);
    return { figures, extras: { ...extras, rssAfterFirst, heapAfterFirst, first: RSS_FIRST } };
  } finally {
    await broker.stop();
  }
}

export async function benchExchange(): Promise<BenchReport> {
  const startedAt = new Date();
  const fixtures = await createFixtures(TOKENS);
  const cleanups: Array<() => void> = [];
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  try {
    const selected = SCENARIOS.filter((scenario) => !ONLY || ONLY.includes(scenario.id));
    const localKeys: KeysConfig = { provider: 'local', dir: join(fixtures.dir, 'keys') };
    const needsRedis = selected.some((scenario) => scenario.redis);
    const redis = needsRedis ? await startRedis() : undefined;
    if (redis) cleanups.push(redis.stop);
    const hsm = selected.some((scenario) => scenario.keys === 'pkcs11')
      ? await softHsm()
      : undefined;
    if (hsm && typeof hsm !== 'string') cleanups.push(() => hsm.cleanup());
    const workersSupported = cliSupportsWorkers();

    const baseline = await measureHttpBaseline(fixtures.bodies.es256, {
      seconds: SECONDS,
      rounds: ROUNDS,
      connections: CONNECTIONS,
    });
    const times = measureCrypto(fixtures);
    const tHttp = 1 / baseline.rps;

    const results: ScenarioResult[] = [];
    let headline: BenchReport['headline'];
    for (const scenario of selected) {
      const ceiling = ceilingFor(scenario.kind, tHttp, times);
      const skip = (reason: string) =>
        results.push({ id: scenario.id, label: scenario.label, ceiling, skipped: reason });
      if (scenario.redis && !redis) {
        skip('redis-server not installed');
        continue;
      }
      if (scenario.keys === 'pkcs11' && typeof hsm !== 'object') {
        skip(typeof hsm === 'string' ? hsm : 'SoftHSM2 unavailable');
        continue;
      }
      if (scenario.workers && !workersSupported) {
        skip('n/a: this tessera serve has no --workers');
        continue;
      }
      const keys = scenario.keys === 'pkcs11' && typeof hsm === 'object' ? hsm.keys : localKeys;
      const { figures, extras } = await runScenario(fixtures, scenario, {
        keys,
        ...(scenario.redis && redis && { redisUrl: redis.url }),
        ...(scenario.workers && { workers: scenario.workers }),
        ...(scenario.keys === 'pkcs11' && typeof hsm === 'object' && { env: hsm.env }),
        ...(PROFILE_DIR && { profileDir: PROFILE_DIR }),
      });
      const cpuCeiling = cpuCeilingMicros(scenario.kind, baseline.cpuMicros, times);
      const cpuRatio =
        cpuCeiling !== undefined && figures.cpuMicros ? cpuCeiling / figures.cpuMicros : undefined;
      results.push({
        id: scenario.id,
        label: scenario.label,
        ceiling,
        ...figures,
        ratio: figures.rps / ceiling,
        ...(cpuRatio !== undefined && { cpuRatio }),
      });
      if (extras) {
        headline = {
          id: scenario.id,
          loadCurve: extras.curve,
          rss: {
            afterExchanges: extras.first,
            bytes: extras.rssAfterFirst,
            laterExchanges: extras.served,
            laterBytes: extras.rssAfterTotal,
            heapUsed: extras.heapAfterFirst,
            laterHeapUsed: extras.heapAfterTotal,
          },
        };
      }
    }

    const report: BenchReport = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      settings: { tokens: TOKENS, seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS },
      ceiling: {
        httpBaselineRps: baseline.rps,
        httpBaselineP99: baseline.p99,
        ...(baseline.cpuMicros !== undefined && { httpBaselineCpuMicros: baseline.cpuMicros }),
        microseconds: {
          http: tHttp * 1e6,
          rs256Verify: times.rs256Verify * 1e6,
          es256Sign: times.es256Sign * 1e6,
          rs256Sign: times.rs256Sign * 1e6,
          es256Verify: times.es256Verify * 1e6,
        },
        cpuMicroseconds: {
          rs256Verify: times.cpu.rs256Verify * 1e6,
          es256Sign: times.cpu.es256Sign * 1e6,
          rs256Sign: times.cpu.rs256Sign * 1e6,
          es256Verify: times.cpu.es256Verify * 1e6,
        },
        ...(cpuCeilingMicros('es256', baseline.cpuMicros, times) !== undefined && {
          cpuMicrosPerExchange: cpuCeilingMicros('es256', baseline.cpuMicros, times),
        }),
        rps: ceilingFor('es256', tHttp, times),
        ...(typeof hsm === 'object' && { softHsmRawEs256SignPerSecond: hsm.rawSignRate }),
      },
      scenarios: results,
      headline,
      workersSupported,
    };
    return report;
  } finally {
    for (const cleanup of cleanups.reverse()) cleanup();
    await fixtures.close();
    rmSync(fixtures.dir, { recursive: true, force: true });
  }
}

export async function runExchangeBench(): Promise<void> {
  const report = await benchExchange();
  printReport(report);
  if (!ONLY) writeReport(report, RESULTS);
  else console.log(`\n(BENCH_SCENARIOS set: ${RESULTS} left as it was)`);
}
