import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { createApp, type AppOverrides, type TesseraApp } from '../../src/app.js';
import { parseConfig, type ConfigInput } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { freePort } from './net.js';
import { TEST_CACHE_SECRET } from './redis.js';

export { freePort };

export const REPO_POLICIES = resolve(import.meta.dirname, '../../policies');

/** Every line the app logged, to assert on (and to assert that no secret appears). */
export interface LogCapture {
  lines: string[];
  text(): string;
}

export function captureLogs(): { capture: LogCapture; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return {
    capture: { lines, text: () => lines.join('\n') },
    logger: createLogger({ level: 'debug', destination }),
  };
}

export interface TestApp {
  app: TesseraApp;
  url: string;
  logs: LogCapture;
  dir: string;
  /** A dev-cluster token for `namespace`/`serviceAccount`. */
  devToken(
    namespace?: string,
    serviceAccount?: string,
    options?: { audience?: string | string[]; ttlSeconds?: number; now?: number },
  ): Promise<string>;
  close(): Promise<void>;
}

/**
 * A broker on a free loopback port (its issuer is its own URL) with the embedded defaults, its keys and dev cluster in a
 * fresh temporary directory, logging into memory.
 */
export async function startTestApp(
  input: Partial<ConfigInput> = {},
  overrides: AppOverrides = {},
): Promise<TestApp> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-test-'));
  const port = await freePort();
  const config = parseConfig({
    issuer: `http://127.0.0.1:${port}`,
    audience: 'tessera',
    devCluster: { keyDir: join(dir, 'dev-cluster') },
    policies: REPO_POLICIES,
    keys: { provider: 'local', dir: join(dir, 'keys') },
    x509: { dir: join(dir, 'ca') },
    logging: { level: 'debug' },
    // Tests send hundreds of exchanges from one address; the limits have their own tests.
    rateLimit: { enabled: false },
    ...input,
  });
  const { capture, logger } = captureLogs();
  const env = { ...process.env, TESSERA_CACHE_KEY: TEST_CACHE_SECRET };
  const app = await createApp(config, {
    logger,
    watchPolicies: false,
    processMetrics: false,
    env,
    ...overrides,
  });
  const { url } = await app.listen({ port, host: '127.0.0.1' });
  return {
    app,
    url,
    logs: capture,
    dir,
    devToken(namespace = 'default', serviceAccount = 'demo', options = {}) {
      if (!app.devCluster) throw new Error('no dev cluster configured');
      return app.devCluster.signToken({
        namespace,
        serviceAccount,
        audience: options.audience ?? 'tessera',
        ttlSeconds: options.ttlSeconds,
        now: options.now,
      });
    },
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** A form body for POST /v1/token. */
export function exchangeForm(params: Record<string, string | string[]>): string {
  const form = new URLSearchParams();
  for (const [name, value] of Object.entries(params))
    for (const item of [value].flat()) form.append(name, item);
  return form.toString();
}

export async function postToken(
  url: string,
  body: string,
  contentType = 'application/x-www-form-urlencoded',
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(`${url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as Record<string, unknown>,
  };
}
