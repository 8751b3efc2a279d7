import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../src/config/index.js';
import { createKeyProvider, type JwsAlgorithm, type KeyProvider } from '../src/keys/index.js';
import { silentLogger } from '../src/observability/index.js';
import { createSoftHsmToken, softHsmMissing } from '../test/support/softhsm.js';
import { measureSoftHsmSign } from './ceiling.js';

/**
 * JWS signing throughput of the key providers, local files vs PKCS#11 (SoftHSM2), one run:
 * the median of 5 batches, each signing a JWT-sized input one at a time ("serial") and 64 in
 * flight ("concurrent"), with the event-loop utilisation of the concurrent batches (how much
 * of the main thread signing takes; C_SignAsync and crypto.sign's callback form run on the
 * libuv pool), and SoftHSM2's raw ES256 rate next to the provider's. Prints figures; asserts nothing.
 */
const BATCHES = 5;
const SECONDS_PER_BATCH = 0.4;
const IN_FLIGHT = 64;
const input = new TextEncoder().encode(`${'e'.repeat(36)}.${'p'.repeat(380)}`);

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function batch(
  sign: () => Promise<unknown>,
  inFlight: number,
): Promise<{ perSecond: number; elu: number }> {
  const started = performance.now();
  const eluStart = performance.eventLoopUtilization();
  const deadline = started + SECONDS_PER_BATCH * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await sign();
        done += 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { perSecond: done / elapsed, elu: performance.eventLoopUtilization(eluStart).utilization };
}

async function measure(
  provider: KeyProvider,
  alg: JwsAlgorithm,
): Promise<{ row: string; serial: number }> {
  const key = await provider.signingKey(alg);
  const sign = (): Promise<Uint8Array> => key.sign(input);
  await batch(sign, IN_FLIGHT); // warm-up: sessions opened, handles found, JIT settled
  const serial: number[] = [];
  const concurrent: number[] = [];
  const elu: number[] = [];
  for (let index = 0; index < BATCHES; index += 1) {
    serial.push((await batch(sign, 1)).perSecond);
    const result = await batch(sign, IN_FLIGHT);
    concurrent.push(result.perSecond);
    elu.push(result.elu);
  }
  const row = [
    provider.kind.padEnd(7),
    alg.padEnd(6),
    median(serial).toFixed(0).padStart(10),
    median(concurrent).toFixed(0).padStart(12),
    `${(median(elu) * 100).toFixed(0)}%`.padStart(8),
  ];
  return { row: row.join('  '), serial: median(serial) };
}

const keysConfig = (keys: Record<string, unknown>) =>
  parseConfig({
    issuer: 'https://bench.test',
    audience: 'bench',
    keys: { algorithms: ['ES256', 'RS256'], ...keys },
  }).keys;

console.log('\nkeys: JWS signatures/s (median of 5 batches; one run)');
console.log(['provider', 'alg   ', '    serial', '  concurrent', 'loop use'].join('  '));

const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-keys-'));
try {
  const local = await createKeyProvider(keysConfig({ provider: 'local', dir: join(dir, 'keys') }), {
    logger: silentLogger(),
    autoRotate: false,
  });
  for (const alg of ['ES256', 'RS256'] as const) console.log((await measure(local, alg)).row);
  await local.close();

  const missing = softHsmMissing();
  if (missing) console.log(`pkcs11   skipped: ${missing}`);
  else {
    const token = createSoftHsmToken({ label: 'bench' });
    try {
      const hsm = await createKeyProvider(
        keysConfig({
          provider: 'pkcs11',
          module: token.module,
          tokenLabel: 'bench',
          pinEnv: 'BENCH_PIN',
        }),
        {
          logger: silentLogger(),
          env: { ...process.env, BENCH_PIN: token.pin },
          autoRotate: false,
        },
      );
      const es256 = await measure(hsm, 'ES256');
      console.log(es256.row);
      console.log((await measure(hsm, 'RS256')).row);
      await hsm.close();
      // The raw rate the exchange bench compares with, measured the same way the provider signs
      // ES256 on SoftHSM2: one thread, one session, C_SignInit + C_Sign on a session key.
      const raw = median(
        Array.from({ length: BATCHES }, () =>
          measureSoftHsmSign({ module: token.module, label: 'bench', pin: token.pin }),
        ),
      );
      console.log(
        `${'raw'.padEnd(7)}  ${'ES256'.padEnd(6)}  ${raw.toFixed(0).padStart(10)}  (SoftHSM2 C_SignInit + C_Sign, no JWS)`,
      );
      console.log(
        `pkcs11 ES256 serial signatures through the provider: ${((es256.serial / raw) * 100).toFixed(0)} % of raw`,
      );
    } finally {
      token.cleanup();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
