// Preloaded with `node --import`: appends the URL of every module resolved (import and require)
// to the file named by TESSERA_RECORD_MODULES, so a test can see what a command loaded.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import process from 'node:process';

const out = process.env.TESSERA_RECORD_MODULES;
if (out) {
  registerHooks({
    resolve(specifier, context, next) {
      const result = next(specifier, context);
      appendFileSync(out, `${result.url}\n`);
      return result;
    },
  });
}
