import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JWT_TYPE, TOKEN_EXCHANGE } from '../support/app.js';
import { startBrokerProcess, type BrokerProcess } from '../support/broker-process.js';

/**
 * What a running broker loads follows its config: `@kubernetes/client-node`, most of the heap a
 * broker would otherwise carry, only for TokenReview or pod attestation (those paths are covered
 * by their own tests, through the real client).
 */
const RECORDER = resolve(import.meta.dirname, '../support/record-modules.mjs');
const TESSERA_BIN = resolve(import.meta.dirname, '../../bin/tessera.js');

let broker: BrokerProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('modules a broker loads', () => {
  it(
    'ok/a-broker-verifying-by-jwks-without-pod-attestation-never-loads-the-kubernetes-client',
    {
      timeout: 120_000,
    },
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'tessera-modules-'));
      const record = join(dir, 'modules.txt');
      writeFileSync(record, '');
      broker = await startBrokerProcess({
        command: [process.execPath, '--import', RECORDER, TESSERA_BIN],
        env: { TESSERA_RECORD_MODULES: record },
      });
      await broker.waitForLog('listening');
      const response = await fetch(`${broker.url}/v1/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: TOKEN_EXCHANGE,
          subject_token: await broker.dev.signToken({
            namespace: 'default',
            serviceAccount: 'demo',
            audience: 'tessera',
          }),
          subject_token_type: JWT_TYPE,
          resource: 'demo',
        }),
      });
      expect(response.status).toBe(200);

      const modules = readFileSync(record, 'utf8').split('\n').filter(Boolean);
      // The recorder sees the broker's own modules (else this test could not fail)…
      expect(modules.some((url) => url.includes('/node_modules/hono/'))).toBe(true);
      expect(modules.some((url) => url.includes('/src/verifiers/tokenreview-client.ts'))).toBe(
        true,
      );
      // …and not the Kubernetes client.
      expect(
        modules.filter((url) => url.includes('/node_modules/@kubernetes/client-node/')),
      ).toEqual([]);
    },
  );
});
