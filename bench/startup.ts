import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { startTestApp } from '../test/support/app.js';

/**
 * What a sidecar costs: wall time of `tessera --version` (the compiled command, and for
 * comparison the sources through the TypeScript loader) next to `node -e 0`, and the resident
 * memory of an idle `tessera agent` next to an idle `node`. Median of 7 runs; prints figures,
 * asserts nothing. Builds dist/ first when it is missing.
 */
const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const RUNS = 7;
const CLI = join(ROOT, 'dist/cli/main.js');

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function wallMs(args: string[]): Promise<number> {
  const times: number[] = [];
  for (let index = 0; index < RUNS; index++) {
    const started = performance.now();
    await run(process.execPath, args, { cwd: ROOT });
    times.push(performance.now() - started);
  }
  return median(times);
}

/** VmRSS of `pid` in MiB (Linux), read once it has been idle for a moment. */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return line ? Number(line[1]) / 1024 : Number.NaN;
}

async function idleRss(args: string[], ready: () => boolean): Promise<number> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore' });
  try {
    const deadline = Date.now() + 60_000;
    while (!ready()) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`${args.join(' ')} did not become idle`);
      await new Promise((done) => setTimeout(done, 100));
    }
    await new Promise((done) => setTimeout(done, 2000));
    return rssMiB(child.pid as number);
  } finally {
    child.kill('SIGTERM');
  }
}

if (!existsSync(CLI))
  await run(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    { cwd: ROOT },
  );

const nodeOnly = await wallMs(['-e', '0']);
const compiled = await wallMs([CLI, '--version']);
const fromSources = await wallMs([join(ROOT, 'bin/tessera.js'), '--version']);
console.log(`startup (median of ${RUNS}, ${process.version}):`);
console.log(`  node -e 0                              ${nodeOnly.toFixed(0).padStart(6)} ms`);
console.log(`  tessera --version (dist/)              ${compiled.toFixed(0).padStart(6)} ms`);
console.log(`  tessera --version (sources, tsx)       ${fromSources.toFixed(0).padStart(6)} ms`);

const broker = await startTestApp();
const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-agent-'));
try {
  const tokenFile = join(dir, 'sa-token');
  writeFileSync(tokenFile, await broker.devToken('default', 'demo'));
  const out = join(dir, 'out');
  const agent = await idleRss(
    [
      CLI,
      'agent',
      '--endpoint',
      broker.url,
      '--token-file',
      tokenFile,
      '--resource',
      'demo',
      '--out',
      out,
    ],
    () => existsSync(join(out, 'token')),
  );
  const idleNode = await idleRss(['-e', 'setInterval(() => {}, 1 << 30)'], () => true);
  console.log('idle resident memory (VmRSS):');
  console.log(`  node (an idle timer)                   ${idleNode.toFixed(1).padStart(6)} MiB`);
  console.log(`  tessera agent (jwt, token written)     ${agent.toFixed(1).padStart(6)} MiB`);
} finally {
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
}
