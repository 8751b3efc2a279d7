import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');

export interface InstalledPackage {
  /** An empty project with the packed tarball installed (production dependencies only). */
  dir: string;
  tarball: string;
}

/**
 * `npm pack` (which runs `prepare`, the build) and an install of the tarball into an empty
 * project, as a user would do it. Dependencies come from the local npm cache when they are
 * there; install scripts are skipped (no native build: the SDK needs none).
 */
export async function packAndInstall(): Promise<InstalledPackage> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-consumer-'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [
    { filename: string },
  ];
  const tarball = join(dir, filename);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  );
  await run(
    'npm',
    [
      'install',
      '--omit=dev',
      '--prefer-offline',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      tarball,
    ],
    {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return { dir, tarball };
}

/**
 * The machine's own `node` (the first on PATH outside node_modules/.bin, where the repository's
 * Node 24 sits). Missing under CI=true is a failure.
 */
export async function systemNode(): Promise<{ path: string; version: string } | undefined> {
  for (const entry of (process.env.PATH ?? '').split(delimiter)) {
    if (!entry || entry.includes('node_modules')) continue;
    const path = join(entry, 'node');
    try {
      accessSync(path, constants.X_OK);
    } catch {
      continue;
    }
    const { stdout } = await run(path, ['--version']);
    return { path, version: stdout.trim() };
  }
  if (process.env.CI === 'true') throw new Error('no system node on PATH: required when CI=true');
  return undefined;
}
