import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runExchangeBench } from './exchange.js';

/**
 * `npm run bench`: prints figures measured in one run on this machine; asserts nothing.
 * The default run is the exchange bench (every credential kind against the platform ceiling);
 * then pod attestation on and off, then start-up time and RSS of the CLI and the agent.
 * BENCH_ONLY=exchange|attestation|startup runs one of them; keys|x509|workers a component bench.
 */
const only = process.env.BENCH_ONLY;
if (!only || only === 'exchange') await runExchangeBench();
for (const part of ['keys', 'x509', 'workers']) {
  if (only === part) await import(pathToFileURL(resolve(import.meta.dirname, `${part}.ts`)).href);
}
if (!only || only === 'attestation') await import('./attestation.js');
if (!only || only === 'startup') await import('./startup.js');
