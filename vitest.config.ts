import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Tests import the SDK by its package name, from the sources (the package itself ships dist/).
  resolve: {
    alias: { 'tessera-sts/sdk': fileURLToPath(new URL('./src/sdk/index.ts', import.meta.url)) },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers (redis-server, TLS API server, SoftHSM2):
    // generous timeouts, but no timing assertions live here (see bench/).
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
