import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraError } from '../../../../src/errors.js';
import { createX509Authority } from '../../../../src/issuers/x509/index.js';
import { createSelfSignedCa } from '../../../../src/issuers/x509/ca-setup.js';
import { toPem } from '../../../../src/issuers/x509/der.js';
import type { KeyProvider } from '../../../../src/keys/types.js';
import { silentLogger } from '../../../../src/observability/index.js';
import {
  EC_P256,
  localKeyProvider,
  opensslCsr,
  tempDir,
  testSigningKey,
  withFailingNamedKeys,
} from '../../../support/x509.js';

const workspace = tempDir();
const NOW_MS = Date.parse('2026-06-01T00:00:00Z');
const config = (dir: string) => ({ trustDomain: 'example.org', caTtl: 86_400, dir });
let provider: KeyProvider;
let csr: string;

beforeAll(async () => {
  provider = await localKeyProvider(join(workspace.dir, 'keys'));
  csr = opensslCsr(workspace.dir, EC_P256).csrPem;
});
afterAll(async () => {
  await provider.close();
  workspace.cleanup();
});

async function failure(
  promise: Promise<unknown>,
): Promise<{ code: string; reason?: string; description: string }> {
  const caught = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(caught).toBeInstanceOf(TesseraError);
  const { code, reason, description } = caught as TesseraError;
  return { code, reason, description };
}

const request = () => ({
  csr,
  spiffeId: 'spiffe://example.org/ns/a/sa/b',
  dnsNames: [],
  ttlSeconds: 600,
});

describe('createX509Authority', () => {
  it('ok/local-provider-creates-a-self-signed-ca-at-start', async () => {
    const dir = join(workspace.dir, 'auto');
    const authority = await createX509Authority({
      provider,
      config: config(dir),
      logger: silentLogger(),
      now: () => NOW_MS,
    });
    expect(authority.ready()).toBe(true);
    expect((await authority.issue(request())).expiresAt).toBe(NOW_MS / 1000 + 600);
  });

  it('ok/replicas-starting-together-on-an-empty-directory-serve-one-ca', async () => {
    const dir = join(workspace.dir, 'shared');
    // Each replica's clock differs, so each would sign a CA certificate of its own.
    const start = (offsetMs: number) =>
      createX509Authority({
        provider,
        config: config(dir),
        logger: silentLogger(),
        now: () => NOW_MS + offsetMs,
      });
    const replicas = await Promise.all([start(0), start(1_000), start(2_000), start(3_000)]);
    const onDisk = readFileSync(join(dir, 'ca.pem'), 'utf8');
    for (const replica of replicas) {
      expect(replica.ready()).toBe(true);
      expect((await replica.trustBundle()).pem).toBe(onDisk);
    }
  });

  it('fail/no-ca-and-auto-init-off', async () => {
    const authority = await createX509Authority({
      provider,
      config: config(join(workspace.dir, 'none')),
      logger: silentLogger(),
      now: () => NOW_MS,
      autoInit: false,
    });
    expect(authority.ready()).toBe(false);
    expect(await failure(authority.issue(request()))).toEqual({
      code: 'temporarily_unavailable',
      reason: 'ca_unavailable',
      description: 'the X.509 CA is not initialised (run `tessera ca init` or `tessera ca import`)',
    });
    expect((await authority.trustBundle()).spiffe).toEqual({ keys: [], spiffe_refresh_hint: 300 });
  });

  it('fail/ca-certificate-for-another-key', async () => {
    const dir = join(workspace.dir, 'mismatch');
    const foreign = await createSelfSignedCa({
      key: testSigningKey('ES256'),
      trustDomain: 'example.org',
      ttlSeconds: 86_400,
      now: NOW_MS / 1000,
    });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ca.pem'), toPem(foreign.certificate));
    const authority = await createX509Authority({
      provider,
      config: config(dir),
      logger: silentLogger(),
      now: () => NOW_MS,
    });
    expect(authority.ready()).toBe(false);
    expect(await failure(authority.issue(request()))).toEqual({
      code: 'temporarily_unavailable',
      reason: 'ca_unavailable',
      description: 'the X.509 CA is misconfigured',
    });
  });

  it('fail/ca-key-unreachable-then-recovers', async () => {
    const state = { failing: true };
    let clock = NOW_MS;
    const authority = await createX509Authority({
      provider: withFailingNamedKeys(provider, state),
      config: config(join(workspace.dir, 'flaky')),
      logger: silentLogger(),
      now: () => clock,
    });
    expect(authority.ready()).toBe(false);
    expect(await failure(authority.issue(request()))).toEqual({
      code: 'temporarily_unavailable',
      reason: 'ca_unavailable',
      description: 'the X.509 CA key is unavailable',
    });
    state.failing = false;
    clock += 5_000;
    expect((await authority.issue(request())).expiresAt).toBe(clock / 1000 + 600);
    state.failing = true; // the key handle is cached, but signing fails: still a 503, not a 500
    expect(await failure(authority.issue(request()))).toEqual({
      code: 'temporarily_unavailable',
      reason: 'ca_unavailable',
      description: 'the X.509 CA key is unavailable',
    });
  });

  it('fail/ca-expired', async () => {
    const dir = join(workspace.dir, 'expiring');
    let clock = NOW_MS;
    const authority = await createX509Authority({
      provider,
      config: config(dir),
      logger: silentLogger(),
      now: () => clock,
    });
    clock += 86_400_000;
    expect(await failure(authority.issue(request()))).toEqual({
      code: 'temporarily_unavailable',
      reason: 'ca_expired',
      description: 'the X.509 CA certificate has expired',
    });
  });
});
