import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchExchange } from './exchange.js';

/**
 * `npm run bench`: prints figures measured in one run on this machine; asserts nothing.
 * BENCH_ONLY=exchange|keys|x509|workers runs one part.
 */
const only = process.env.BENCH_ONLY;
if (!only || only === 'exchange') await benchExchange();
for (const part of ['keys', 'x509', 'workers']) {
  if (only && only !== part) continue;
  const file = resolve(import.meta.dirname, `${part}.ts`);
  if (existsSync(file)) await import(pathToFileURL(file).href);
}
