import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  checkExchange,
  cliSupportsWorkers,
  startBroker,
  type Broker,
  type BrokerOptions,
  type KeysConfig,
} from './broker.js';
import {
  measureCrypto,
  measureSoftHsmSign,
  startBareExchange,
  startHttpBaseline,
  type CryptoTimes,
  type ReferenceServer,
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
  GENERATOR,
  median,
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

/**
 * The headline broker also serves the load curve and the RSS figures (counted from its start).
 * Below the maximum each point is `ROUNDS` rounds of an open-loop steady pace, the node:http
 * baseline paced at the same rate in turn with the broker, so a stall of the machine or of the
 * generator shows in the platform's p99 beside the broker's; each figure is the median of its rounds.
 */
async function headlineExtras(
  url: string,
  pid: number | undefined,
  bodies: string[],
  max: number,
  served: number,
  baselineUrl: string,
) {
  const curve: CurvePoint[] = [];
  // The broker sat idle while the other participants' rounds ran: two seconds at full load first,
  // so the curve starts from the state a loaded broker is in (JIT, heap sizing, pools).
  served += (await fire(`${url}/v1/token`, bodies, { connections: CONNECTIONS, seconds: 2 })).total;
  for (const share of [0.25, 0.5, 0.75]) {
    const pace = {
      rate: max * share,
      seconds: SECONDS,
      connections: CONNECTIONS,
      warmupSeconds: 1,
    };
    const broker: LoadFigures[] = [];
    const platform: LoadFigures[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      platform.push(await paced(baselineUrl, bodies, pace));
      broker.push(await paced(`${url}/v1/token`, bodies, pace));
    }
    served += broker.reduce((sum, run) => sum + run.total, 0);
    curve.push({
      share,
      target: pace.rate,
      rps: median(broker.map((run) => run.rps)),
      p50: median(broker.map((run) => run.p50)),
      p99: median(broker.map((run) => run.p99)),
      p99Rounds: broker.map((run) => run.p99),
      platformP99: median(platform.map((run) => run.p99)),
      non2xx: broker.reduce((sum, run) => sum + run.non2xx, 0),
    });
  }
  // At the maximum, as many as the broker answers.
  const full = await fire(`${url}/v1/token`, bodies, {
    connections: CONNECTIONS,
    seconds: SECONDS,
  });
  served += full.total;
  curve.push({
    share: 1,
    target: max,
    rps: full.rps,
    p50: full.p50,
    p99: full.p99,
    non2xx: full.non2xx,
  });
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

/** One closed-loop run of `seconds` against a participant, with the CPU both sides used. */
interface Run extends LoadFigures {
  cpuMicros?: number;
  brokerCores?: number;
  generatorCores: number;
}

/** Something measured in the interleaved rounds: the node:http baseline or a broker. */
interface Participant {
  id: string;
  url: string;
  bodies: string[];
  /** CPU seconds the server (with --workers, its whole process tree) has used so far. */
  cpuSeconds: () => number | undefined;
  runs: Run[];
}

async function measureRun(participant: Participant): Promise<Run> {
  const cpuBefore = participant.cpuSeconds();
  const generatorBefore = process.cpuUsage();
  const wallBefore = performance.now();
  const figures = await fire(participant.url, participant.bodies, {
    connections: CONNECTIONS,
    seconds: SECONDS,
  });
  const wall = (performance.now() - wallBefore) / 1000;
  const generator = process.cpuUsage(generatorBefore);
  const cpuAfter = participant.cpuSeconds();
  return {
    ...figures,
    // wrk reports its own CPU; autocannon runs in this process.
    generatorCores:
      (figures.generatorCpuSeconds ?? (generator.user + generator.system) / 1e6) / wall,
    ...(cpuAfter !== undefined &&
      cpuBefore !== undefined && {
        cpuMicros: ((cpuAfter - cpuBefore) / figures.total) * 1e6,
        brokerCores: (cpuAfter - cpuBefore) / wall,
      }),
  };
}

/**
 * ROUNDS rounds; in each, every participant gets one run of SECONDS, starting one further along
 * the list each round. A busy minute on a shared machine then lands on every participant alike,
 * so the ratios between them (broker to ceiling, Redis to in-memory, two workers to one) hold
 * even when the absolute figures drift.
 */
async function interleavedRounds(participants: Participant[]): Promise<void> {
  for (let round = 0; round < ROUNDS; round++) {
    for (let step = 0; step < participants.length; step++) {
      const participant = participants[(round + step) % participants.length] as Participant;
      participant.runs.push(await measureRun(participant));
    }
  }
}

/** Each figure's median across the rounds; requests and refusals summed. */
function summarise(runs: Run[]): Run {
  const of = (pick: (run: Run) => number | undefined): number | undefined => {
    const values = runs.map(pick).filter((value): value is number => value !== undefined);
    return values.length > 0 ? median(values) : undefined;
  };
  const cpuMicros = of((run) => run.cpuMicros);
  const brokerCores = of((run) => run.brokerCores);
  return {
    rps: of((run) => run.rps) ?? 0,
    p50: of((run) => run.p50) ?? 0,
    p99: of((run) => run.p99) ?? 0,
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
    total: runs.reduce((sum, run) => sum + run.total, 0),
    generatorCores: of((run) => run.generatorCores) ?? 0,
    ...(cpuMicros !== undefined && { cpuMicros }),
    ...(brokerCores !== undefined && { brokerCores }),
  };
}

interface Started {
  scenario: Scenario;
  broker: Broker;
  participant: Participant;
  rssAfterFirst?: number;
  heapAfterFirst?: number;
  served: number;
}

/** A scenario's broker, started, checked and warmed up (the headline's by the first 10,000 exchanges). */
async function startScenario(
  fixtures: Fixtures,
  scenario: Scenario,
  options: Omit<BrokerOptions, 'name'>,
): Promise<Started> {
  const broker = await startBroker(fixtures, { ...options, name: scenario.id });
  try {
    const bodies = fixtures.bodies[scenario.kind];
    const url = `${broker.url}/v1/token`;
    // Workers start one after the other: measure once every one of them has settled.
    if (scenario.workers) await waitUntilIdle(broker.child.pid);
    await checkExchange(broker.url, bodies[0] as string);
    const started: Started = {
      scenario,
      broker,
      served: 1,
      participant: {
        id: scenario.id,
        url,
        bodies,
        // With --workers the primary's CPU and every worker's count.
        cpuSeconds: () =>
          scenario.workers ? treeCpuSecondsOf(broker.child.pid) : cpuSecondsOf(broker.child.pid),
        runs: [],
      },
    };
    if (scenario.headline) {
      // The first 10,000 exchanges are the warm-up: JIT, pools and caches settle.
      started.served += (
        await fire(url, bodies, { connections: CONNECTIONS, amount: RSS_FIRST - started.served })
      ).total;
      await pause(1000);
      started.rssAfterFirst = rssOf(broker.child.pid);
      started.heapAfterFirst = await heapUsedOf(broker.url);
    } else
      started.served += (await fire(url, bodies, { connections: CONNECTIONS, seconds: 1 })).total;
    return started;
  } catch (error) {
    await broker.stop();
    throw error;
  }
}

/** Why a scenario cannot run on this machine, or undefined when it can. */
function unavailable(
  scenario: Scenario,
  redis: { url: string } | undefined,
  hsm: Awaited<ReturnType<typeof softHsm>> | undefined,
  workersSupported: boolean,
): string | undefined {
  if (scenario.redis && !redis) return 'redis-server not installed';
  if (scenario.keys === 'pkcs11' && typeof hsm !== 'object')
    return typeof hsm === 'string' ? hsm : 'SoftHSM2 unavailable';
  if (scenario.workers && !workersSupported) return 'n/a: this tessera serve has no --workers';
  return undefined;
}

/** The SoftHSM2 token, Redis and --workers support the selected scenarios need, where present. */
async function environment(selected: Scenario[], cleanups: Cleanup[]) {
  const redis = selected.some((scenario) => scenario.redis) ? await startRedis() : undefined;
  if (redis) cleanups.push(redis.stop);
  const hsm = selected.some((scenario) => scenario.keys === 'pkcs11') ? await softHsm() : undefined;
  if (hsm && typeof hsm !== 'string') cleanups.push(() => hsm.cleanup());
  return { redis, hsm, workersSupported: cliSupportsWorkers() };
}

type Cleanup = () => Promise<void> | void;

/** Every runnable scenario's broker, started and warmed up; the others with the reason they cannot run. */
async function startScenarios(
  fixtures: Fixtures,
  selected: Scenario[],
  env: Awaited<ReturnType<typeof environment>>,
  cleanups: Cleanup[],
): Promise<{ started: Started[]; skipped: Map<string, string> }> {
  const { redis, hsm } = env;
  const localKeys: KeysConfig = { provider: 'local', dir: join(fixtures.dir, 'keys') };
  const skipped = new Map<string, string>();
  const started: Started[] = [];
  for (const scenario of selected) {
    const reason = unavailable(scenario, redis, hsm, env.workersSupported);
    if (reason !== undefined) {
      skipped.set(scenario.id, reason);
      continue;
    }
    const withHsm = scenario.keys === 'pkcs11' && typeof hsm === 'object' ? hsm : undefined;
    const one = await startScenario(fixtures, scenario, {
      keys: withHsm ? withHsm.keys : localKeys,
      ...(scenario.redis && redis && { redisUrl: redis.url }),
      ...(scenario.workers && { workers: scenario.workers }),
      ...(withHsm && { env: withHsm.env }),
      ...(PROFILE_DIR && { profileDir: PROFILE_DIR }),
    });
    cleanups.push(() => one.broker.stop());
    started.push(one);
  }
  return { started, skipped };
}

/** Each scenario's figures against its ceiling; the headline's broker then runs the load curve and the RSS figures. */
async function scenarioResults(
  selected: Scenario[],
  started: Started[],
  skipped: Map<string, string>,
  baseline: Run,
  times: CryptoTimes,
  baselineUrl: string,
): Promise<{ results: ScenarioResult[]; headline?: BenchReport['headline'] }> {
  const tHttp = 1 / baseline.rps;
  const results: ScenarioResult[] = [];
  let headline: BenchReport['headline'];
  for (const scenario of selected) {
    const ceiling = ceilingFor(scenario.kind, tHttp, times);
    const one = started.find((candidate) => candidate.scenario === scenario);
    if (!one) {
      const reason = skipped.get(scenario.id) ?? 'not started';
      results.push({ id: scenario.id, label: scenario.label, ceiling, skipped: reason });
      continue;
    }
    const figures = summarise(one.participant.runs);
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
    if (scenario.headline) headline = await headlineOf(one, figures, baselineUrl);
  }
  return { results, headline };
}

async function headlineOf(
  one: Started,
  figures: Run,
  baselineUrl: string,
): Promise<BenchReport['headline']> {
  const { broker, participant } = one;
  const served = one.served + figures.total;
  const extras = await headlineExtras(
    broker.url,
    broker.child.pid,
    participant.bodies,
    figures.rps,
    served,
    baselineUrl,
  );
  return {
    id: participant.id,
    loadCurve: extras.curve,
    rss: {
      afterExchanges: RSS_FIRST,
      bytes: one.rssAfterFirst,
      laterExchanges: extras.served,
      laterBytes: extras.rssAfterTotal,
      heapUsed: one.heapAfterFirst,
      laterHeapUsed: extras.heapAfterTotal,
    },
  };
}

function ceilingOf(
  baseline: Run,
  times: CryptoTimes,
  softHsmRate: number | undefined,
): BenchReport['ceiling'] {
  const cpuPerExchange = cpuCeilingMicros('es256', baseline.cpuMicros, times);
  return {
    httpBaselineRps: baseline.rps,
    httpBaselineP99: baseline.p99,
    ...(baseline.cpuMicros !== undefined && { httpBaselineCpuMicros: baseline.cpuMicros }),
    microseconds: {
      http: 1e6 / baseline.rps,
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
    ...(cpuPerExchange !== undefined && { cpuMicrosPerExchange: cpuPerExchange }),
    rps: ceilingFor('es256', 1 / baseline.rps, times),
    ...(softHsmRate !== undefined && { softHsmRawEs256SignPerSecond: softHsmRate }),
  };
}

export async function benchExchange(): Promise<BenchReport> {
  const startedAt = new Date();
  const fixtures = await createFixtures(TOKENS);
  const cleanups: Cleanup[] = [];
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  try {
    const selected = SCENARIOS.filter((scenario) => !ONLY || ONLY.includes(scenario.id));
    const env = await environment(selected, cleanups);
    const reference = (id: string, server: ReferenceServer): Participant => {
      cleanups.push(() => server.stop());
      return {
        id,
        url: server.url,
        bodies: fixtures.bodies.es256,
        cpuSeconds: () => cpuSecondsOf(server.pid),
        runs: [],
      };
    };
    const baselineServer = await startHttpBaseline(fixtures.bodies.es256, CONNECTIONS);
    const baseline = reference('node:http', baselineServer);
    const bare = reference('bare exchange', await startBareExchange(fixtures, CONNECTIONS));
    const times = measureCrypto(fixtures);
    const { started, skipped } = await startScenarios(fixtures, selected, env, cleanups);

    await interleavedRounds([baseline, bare, ...started.map((one) => one.participant)]);
    const baselineFigures = summarise(baseline.runs);
    const bareFigures = summarise(bare.runs);
    const { results, headline } = await scenarioResults(
      selected,
      started,
      skipped,
      baselineFigures,
      times,
      baselineServer.url,
    );
    const softHsmRate = typeof env.hsm === 'object' ? env.hsm.rawSignRate : undefined;
    return {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      settings: {
        tokens: TOKENS,
        seconds: SECONDS,
        rounds: ROUNDS,
        connections: CONNECTIONS,
        generator: GENERATOR,
      },
      ceiling: ceilingOf(baselineFigures, times, softHsmRate),
      bareExchange: {
        rps: bareFigures.rps,
        p99: bareFigures.p99,
        ratio: bareFigures.rps / ceilingFor('es256', 1 / baselineFigures.rps, times),
        ...(bareFigures.cpuMicros !== undefined && { cpuMicros: bareFigures.cpuMicros }),
      },
      scenarios: results,
      headline,
      workersSupported: env.workersSupported,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
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
