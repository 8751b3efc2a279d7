import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A SoftHSM2 token made per test run in a temporary directory. `SOFTHSM2_CONF` is set for
 * this process (SoftHSM2 reads it when the module is initialised), so every test file that
 * uses the token must run in its own process (vitest's `forks` pool does this).
 */
const SOFTHSM_MODULE = process.env.SOFTHSM2_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
const SOFTHSM_UTIL = 'softhsm2-util';

export interface SoftHsmToken {
  module: string;
  label: string;
  pin: string;
  soPin: string;
  dir: string;
  /** Initialises one more token (same PINs) in this SoftHSM2 instance, e.g. one per test. */
  addToken(label: string): void;
  /** Removes the token directory and restores `SOFTHSM2_CONF`. */
  cleanup(): void;
}

/** Why SoftHSM2 cannot be used here, or `undefined` when it can. */
export function softHsmMissing(): string | undefined {
  if (!existsSync(SOFTHSM_MODULE))
    return `SoftHSM2 module not found at ${SOFTHSM_MODULE} (apt-get install softhsm2)`;
  try {
    execFileSync(SOFTHSM_UTIL, ['--version'], { stdio: 'pipe' });
  } catch {
    return `${SOFTHSM_UTIL} not on PATH (apt-get install softhsm2)`;
  }
  return undefined;
}

/**
 * Under CI a missing SoftHSM2 fails the run; elsewhere the suite is skipped with the reason
 * printed. Use as `describe.skipIf(skipSoftHsm())(…)`.
 */
export function skipSoftHsm(): boolean {
  const reason = softHsmMissing();
  if (!reason) return false;
  if (process.env.CI === 'true') throw new Error(`SoftHSM2 is required under CI=true: ${reason}`);
  console.warn(`[skipped] SoftHSM2 tests: ${reason}`);
  return true;
}

/** Creates a fresh token labelled `label` and points this process's SoftHSM2 at it. */
export function createSoftHsmToken(
  options: { label?: string; pin?: string; soPin?: string } = {},
): SoftHsmToken {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-softhsm-'));
  const tokenDir = join(dir, 'tokens');
  mkdirSync(tokenDir, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    [
      `directories.tokendir = ${tokenDir}`,
      'objectstore.backend = file',
      'log.level = ERROR',
      'slots.removable = false',
      '',
    ].join('\n'),
  );
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = conf;
  const label = options.label ?? 'tessera-test';
  const pin = options.pin ?? '1234-test-pin';
  const soPin = options.soPin ?? '5678-test-so-pin';
  const addToken = (tokenLabel: string): void => {
    execFileSync(
      SOFTHSM_UTIL,
      ['--init-token', '--free', '--label', tokenLabel, '--pin', pin, '--so-pin', soPin],
      {
        stdio: 'pipe',
        env: { ...process.env, SOFTHSM2_CONF: conf },
      },
    );
  };
  addToken(label);
  return {
    addToken,
    module: SOFTHSM_MODULE,
    label,
    pin,
    soPin,
    dir,
    cleanup() {
      if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previousConf;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
