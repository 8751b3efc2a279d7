import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { parseConfig } from '../src/config/index.js';
import { createX509Authority, type X509Authority } from '../src/issuers/x509/index.js';
import { bridgeKey } from '../src/issuers/x509/webcrypto-bridge.js';
import { createKeyProvider, type KeyProvider } from '../src/keys/index.js';
import { silentLogger } from '../src/observability/index.js';
import { makeCsrs } from './fixtures.js';
import { median } from './support.js';

/**
 * X.509-SVID issuances per second on one core (one request at a time, then 16 in flight):
 * the fast path (hand-rolled DER CSR checks + precomputed TBS template, signed by the
 * provider key) against the @peculiar/x509 object-model path with the same key.
 * Prints figures; asserts nothing. `node bin/run-ts.js bench/x509.ts`.
 */

const ROUNDS = 5;
const PER_ROUND = Number(process.env.BENCH_X509_COUNT ?? 1500);
const SPIFFE_ID = 'spiffe://example.org/ns/bench/sa/worker';
const DNS_NAMES = ['worker.bench.svc'];

type Issue = (csr: string) => Promise<unknown>;

async function rate(issue: Issue, csrs: string[], concurrency: number): Promise<number> {
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < PER_ROUND) await issue(csrs[next++ % csrs.length]!);
      }),
    );
    rounds.push(PER_ROUND / ((performance.now() - started) / 1000));
  }
  return median(rounds);
}

/** The slow reference: parse + verify the CSR and build the leaf with @peculiar/x509. */
async function peculiarPath(provider: KeyProvider, caPem: string): Promise<Issue> {
  const bridged = bridgeKey(await provider.namedKey('x509-ca', 'ES256'));
  const ca = new x509.X509Certificate(caPem);
  const caKeyId = ca.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  return async (pem) => {
    const csr = new x509.Pkcs10CertificateRequest(pem);
    if (!(await csr.verify())) throw new Error('bad csr');
    const now = Date.now();
    const serial = randomBytes(16);
    serial[0] = serial[0]! | 0x80;
    return x509.X509CertificateGenerator.create(
      {
        serialNumber: `00${serial.toString('hex')}`,
        subject: '',
        issuer: ca.subject,
        notBefore: new Date(now - 30_000),
        notAfter: new Date(now + 3_600_000),
        publicKey: csr.publicKey,
        signingKey: bridged.keys.privateKey,
        signingAlgorithm: bridged.signingAlgorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([
            x509.ExtendedKeyUsage.serverAuth,
            x509.ExtendedKeyUsage.clientAuth,
          ]),
          await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
          new x509.AuthorityKeyIdentifierExtension(caKeyId),
          new x509.SubjectAlternativeNameExtension(
            [
              { type: 'url', value: SPIFFE_ID },
              ...DNS_NAMES.map((value) => ({ type: 'dns' as const, value })),
            ],
            true,
          ),
        ],
      },
      bridged.crypto,
    );
  };
}

async function providerFor(
  label: string,
  dir: string,
): Promise<{ provider: KeyProvider; close(): Promise<void> } | undefined> {
  if (label === 'local') {
    const config = parseConfig({
      issuer: 'https://sts.example.com',
      audience: 'bench',
      keys: { provider: 'local', dir: join(dir, 'keys') },
    });
    const provider = await createKeyProvider(config.keys, {
      logger: silentLogger(),
      autoRotate: false,
      applyAtStart: false,
    });
    return { provider, close: () => provider.close() };
  }
  const { createSoftHsmToken, softHsmMissing } = await import('../test/support/softhsm.js');
  const missing = softHsmMissing();
  if (missing) {
    console.log(`  pkcs11 (SoftHSM2): skipped, ${missing}`);
    return undefined;
  }
  const token = createSoftHsmToken({ label: 'tessera-bench' });
  const config = parseConfig({
    issuer: 'https://sts.example.com',
    audience: 'bench',
    keys: {
      provider: 'pkcs11',
      module: token.module,
      tokenLabel: token.label,
      pinEnv: 'BENCH_PIN',
    },
  });
  const provider = await createKeyProvider(config.keys, {
    logger: silentLogger(),
    env: { BENCH_PIN: token.pin },
    autoRotate: false,
    applyAtStart: false,
  });
  return {
    provider,
    async close() {
      await provider.close();
      token.cleanup();
    },
  };
}

export async function benchX509(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-x509-'));
  try {
    const csrs = await makeCsrs(64);
    console.log(
      `\nX.509-SVID issuance (P-256 CSRs, ES256 CA key; issuances/s, median of ${ROUNDS} × ${PER_ROUND})`,
    );
    for (const label of ['local', 'pkcs11']) {
      const opened = await providerFor(label, dir);
      if (!opened) continue;
      try {
        const authority: X509Authority = await createX509Authority({
          provider: opened.provider,
          config: { trustDomain: 'example.org', caTtl: 86_400, dir: join(dir, `ca-${label}`) },
          logger: silentLogger(),
          autoInit: true,
        });
        const fast: Issue = (csr) =>
          authority.issue({ csr, spiffeId: SPIFFE_ID, dnsNames: DNS_NAMES, ttlSeconds: 3600 });
        const slow = await peculiarPath(opened.provider, (await authority.trustBundle()).pem);
        for (const [name, issue] of [
          ['fast path', fast],
          ['@peculiar/x509 path', slow],
        ] as const) {
          const serial = await rate(issue, csrs, 1);
          const parallel = await rate(issue, csrs, 16);
          console.log(
            `  ${label.padEnd(6)} ${name.padEnd(20)} ${serial.toFixed(0).padStart(6)}/s sequential   ${parallel.toFixed(0).padStart(6)}/s with 16 in flight`,
          );
        }
      } finally {
        await opened.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await benchX509();
