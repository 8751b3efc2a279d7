import 'reflect-metadata';
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/index.js';
import { TesseraError } from '../../src/errors.js';
import { registerCaCommands } from '../../src/cli/ca.js';
import { createX509Authority, type X509Authority } from '../../src/issuers/x509/index.js';
import { createKeyProvider, type KeyProvider } from '../../src/keys/index.js';
import { silentLogger } from '../../src/observability/index.js';
import { createSoftHsmToken, skipSoftHsm, type SoftHsmToken } from '../support/softhsm.js';
import {
  EC_P256,
  EC_P384,
  RSA_2048,
  localKeyProvider,
  openssl,
  opensslCsr,
  tempDir,
  writeFiles,
} from '../support/x509.js';

/**
 * One contract, two CAs: the x509-ca key held by the local provider (files) and by the
 * PKCS#11 provider (a SoftHSM2 token made for this run). Leaves are checked with openssl
 * and parsed field by field.
 */

const TRUST_DOMAIN = 'example.org';
const SPIFFE_ID = 'spiffe://example.org/ns/prod/sa/orders';
const DNS_NAMES = ['orders.prod.svc', 'orders.example.com'];

interface Harness {
  provider: KeyProvider;
  config: Config;
  cleanup(): Promise<void>;
}

async function localHarness(dir: string): Promise<Harness> {
  const provider = await localKeyProvider(join(dir, 'keys'));
  const config = parseConfig({
    issuer: 'https://sts.example.com',
    audience: 'tessera',
    keys: { provider: 'local', dir: join(dir, 'keys') },
    x509: { trustDomain: TRUST_DOMAIN },
  });
  return { provider, config, cleanup: () => provider.close() };
}

let token: SoftHsmToken | undefined;
async function pkcs11Harness(): Promise<Harness> {
  token ??= createSoftHsmToken({ label: 'tessera-x509' });
  const config = parseConfig({
    issuer: 'https://sts.example.com',
    audience: 'tessera',
    keys: {
      provider: 'pkcs11',
      module: token.module,
      tokenLabel: token.label,
      pinEnv: 'TESSERA_TEST_PIN',
    },
    x509: { trustDomain: TRUST_DOMAIN },
  });
  const provider = await createKeyProvider(config.keys, {
    logger: silentLogger(),
    env: { TESSERA_TEST_PIN: token.pin },
    autoRotate: false,
    applyAtStart: false,
  });
  return { provider, config, cleanup: () => provider.close() };
}

const leafOf = (pem: string) => new x509.X509Certificate(pem);
const keyBits = (spki: ArrayBuffer) =>
  new Uint8Array(AsnConvert.parse(spki, SubjectPublicKeyInfo).subjectPublicKey);

async function expectError(
  promise: Promise<unknown>,
): Promise<{ code: string; status: number; reason?: string; description: string }> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(TesseraError);
  const { code, status, reason, description } = error as TesseraError;
  return { code, status, reason, description };
}

const providers = [
  ['local', false, (dir: string) => localHarness(dir)],
  ['pkcs11', skipSoftHsm(), () => pkcs11Harness()],
] as const;

describe.each(providers)('X.509 CA held by the %s key provider', (kind, skip, makeHarness) => {
  const workspace = tempDir();
  const started = Math.floor(Date.now() / 1000);
  let clock = started * 1000;
  const now = () => clock;
  let harness: Harness;
  let authority: X509Authority;
  const caDir = join(workspace.dir, 'ca');

  beforeAll(async () => {
    if (skip) return;
    harness = await makeHarness(workspace.dir);
    authority = await createX509Authority({
      provider: harness.provider,
      config: { ...harness.config.x509, dir: caDir },
      logger: silentLogger(),
      now,
    });
    if (kind === 'pkcs11') {
      // No self-signed CA appears by itself with an HSM: an operator runs `tessera ca init`.
      expect(authority.ready()).toBe(false);
      expect(
        await expectError(
          authority.issue({
            csr: opensslCsr(workspace.dir, EC_P256).csrPem,
            spiffeId: SPIFFE_ID,
            dnsNames: [],
            ttlSeconds: 60,
          }),
        ),
      ).toEqual({
        code: 'temporarily_unavailable',
        status: 503,
        reason: 'ca_unavailable',
        description:
          'the X.509 CA is not initialised (run `tessera ca init` or `tessera ca import`)',
      });
      const program = new Command().exitOverride();
      const config = { ...harness.config, x509: { ...harness.config.x509, dir: caDir } };
      registerCaCommands(
        program,
        () => config,
        () => Promise.resolve({ ...harness.provider, close: () => Promise.resolve() }),
      );
      await program.parseAsync(['node', 'tessera', 'ca', 'init']);
      clock += 5_000; // the authority retries loading at most every 5 s
      await authority.trustBundle();
    }
    expect(authority.ready()).toBe(true);
  });
  afterAll(async () => {
    if (!skip) await harness.cleanup();
    workspace.cleanup();
  });

  it.skipIf(skip)('ok/leaf-verifies-with-openssl-and-follows-the-spiffe-profile', async () => {
    const { csrPem } = opensslCsr(workspace.dir, EC_P256);
    const issuedAt = Math.floor(now() / 1000);
    const svid = await authority.issue({
      csr: csrPem,
      spiffeId: SPIFFE_ID,
      dnsNames: DNS_NAMES,
      ttlSeconds: 3600,
    });
    const files = writeFiles(workspace.dir, {
      'leaf.pem': svid.fields.certificate,
      'bundle.pem': svid.fields.trust_bundle.join(''),
    });
    for (const purpose of ['sslclient', 'sslserver']) {
      expect(
        openssl([
          'verify',
          '-purpose',
          purpose,
          '-CAfile',
          files['bundle.pem']!,
          files['leaf.pem']!,
        ]),
      ).toBe(`${files['leaf.pem']}: OK\n`);
    }
    expect(openssl(['x509', '-in', files['leaf.pem']!, '-noout', '-ext', 'subjectAltName'])).toBe(
      'X509v3 Subject Alternative Name: critical\n    URI:spiffe://example.org/ns/prod/sa/orders, DNS:orders.prod.svc, DNS:orders.example.com\n',
    );

    const leaf = leafOf(svid.fields.certificate);
    const root = leafOf(svid.fields.trust_bundle[0]!);
    expect(svid.fields.certificate_chain).toEqual([svid.fields.certificate]);
    expect(svid.expiresAt).toBe(issuedAt + 3600);
    expect(leaf.subject).toBe('');
    expect(leaf.issuer).toBe(root.subject);
    expect(leaf.notBefore.getTime() / 1000).toBe(issuedAt - 30);
    expect(leaf.notAfter.getTime() / 1000).toBe(issuedAt + 3600);
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'url', value: SPIFFE_ID },
      { type: 'dns', value: 'orders.prod.svc' },
      { type: 'dns', value: 'orders.example.com' },
    ]);
    const constraints = leaf.getExtension(x509.BasicConstraintsExtension)!;
    expect({ critical: constraints.critical, ca: constraints.ca }).toEqual({
      critical: true,
      ca: false,
    });
    const usages = leaf.getExtension(x509.KeyUsagesExtension)!;
    expect({ critical: usages.critical, usages: usages.usages }).toEqual({
      critical: true,
      usages: x509.KeyUsageFlags.digitalSignature,
    });
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    const csrKey = new x509.Pkcs10CertificateRequest(csrPem).publicKey;
    expect(Buffer.from(leaf.publicKey.rawData).equals(Buffer.from(csrKey.rawData))).toBe(true);
    expect(leaf.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(
      createHash('sha1').update(keyBits(csrKey.rawData)).digest('hex'),
    );
    expect(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      root.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    const serial = Buffer.from(leaf.serialNumber, 'hex');
    expect(serial.length).toBe(16);
    expect(serial[0]! & 0x80).toBe(0x80); // exactly 128 bits, positive (DER adds the 0x00)
    expect(await leaf.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(true);
  });

  it.skipIf(skip)('ok/csr-asking-for-ca-true-and-foreign-names-gets-the-profile-only', async () => {
    const { csrPem } = opensslCsr(workspace.dir, EC_P384, [
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
      '-addext',
      'subjectAltName=URI:spiffe://evil.org/admin,URI:spiffe://example.org/admin,DNS:evil.example.com,IP:10.0.0.1',
    ]);
    const svid = await authority.issue({
      csr: csrPem,
      spiffeId: SPIFFE_ID,
      dnsNames: [],
      ttlSeconds: 600,
    });
    const leaf = leafOf(svid.fields.certificate);
    expect(leaf.subject).toBe('');
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'url', value: SPIFFE_ID },
    ]);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    expect(leaf.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.digitalSignature,
    );
    expect(leaf.extensions.map((extension) => extension.type)).toEqual([
      '2.5.29.19',
      '2.5.29.15',
      '2.5.29.37',
      '2.5.29.14',
      '2.5.29.35',
      '2.5.29.17',
    ]);
  });

  it.skipIf(skip)('ok/rsa-csr-gets-key-encipherment', async () => {
    const svid = await authority.issue({
      csr: opensslCsr(workspace.dir, RSA_2048).csrPem,
      spiffeId: SPIFFE_ID,
      dnsNames: [],
      ttlSeconds: 600,
    });
    const usages = leafOf(svid.fields.certificate).getExtension(x509.KeyUsagesExtension)!.usages;
    expect(usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    const files = writeFiles(workspace.dir, {
      'rsa-leaf.pem': svid.fields.certificate,
      'rsa-bundle.pem': svid.fields.trust_bundle.join(''),
    });
    expect(
      openssl([
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        files['rsa-bundle.pem']!,
        files['rsa-leaf.pem']!,
      ]),
    ).toBe(`${files['rsa-leaf.pem']}: OK\n`);
  });

  it.skipIf(skip)('fail/csr-with-bad-signature', async () => {
    const { csrPem } = opensslCsr(workspace.dir, EC_P256);
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der.writeUInt8(der.readUInt8(der.length - 3) ^ 0x01, der.length - 3);
    expect(
      await expectError(
        authority.issue({
          csr: der.toString('base64url'),
          spiffeId: SPIFFE_ID,
          dnsNames: [],
          ttlSeconds: 60,
        }),
      ),
    ).toEqual({
      code: 'invalid_request',
      status: 400,
      reason: 'csr_signature_invalid',
      description: 'csr signature does not verify (proof of possession failed)',
    });
  });

  it.skipIf(skip)('ok/trust-bundle-holds-the-root-and-jwt-keys', async () => {
    const bundle = await authority.trustBundle([
      { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1', alg: 'ES256', use: 'sig' },
    ]);
    const rootPem = (
      await authority.issue({
        csr: opensslCsr(workspace.dir, EC_P256).csrPem,
        spiffeId: SPIFFE_ID,
        dnsNames: [],
        ttlSeconds: 60,
      })
    ).fields.trust_bundle[0]!;
    expect(bundle.pem).toBe(rootPem);
    const root = new NodeX509(rootPem);
    const rootJwk = root.publicKey.export({ format: 'jwk' });
    expect(bundle.spiffe).toEqual({
      keys: [
        {
          kty: 'EC',
          crv: 'P-256',
          x: rootJwk.x,
          y: rootJwk.y,
          use: 'x509-svid',
          x5c: [root.raw.toString('base64')],
        },
        { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1', alg: 'ES256', use: 'jwt-svid' },
      ],
      spiffe_refresh_hint: 300,
      spiffe_sequence: Math.floor(new Date(root.validFrom).getTime() / 1000),
    });
  });

  it.skipIf(skip)('ok/restart-keeps-the-ca', async () => {
    const again = await createX509Authority({
      provider: harness.provider,
      config: { ...harness.config.x509, dir: caDir },
      logger: silentLogger(),
      now,
    });
    expect((await again.trustBundle()).pem).toBe((await authority.trustBundle()).pem);
  });

  it.skipIf(skip)('ok/lifetime-capped-by-ca-not-after', async () => {
    const shortDir = join(workspace.dir, 'short-ca');
    const program = new Command().exitOverride();
    const config = { ...harness.config, x509: { ...harness.config.x509, dir: shortDir } };
    registerCaCommands(
      program,
      () => config,
      () => Promise.resolve({ ...harness.provider, close: () => Promise.resolve() }),
    );
    await program.parseAsync(['node', 'tessera', 'ca', 'init', '--ttl', '10m']);
    const short = await createX509Authority({
      provider: harness.provider,
      config: config.x509,
      logger: silentLogger(),
      now,
    });
    const svid = await short.issue({
      csr: opensslCsr(workspace.dir, EC_P256).csrPem,
      spiffeId: SPIFFE_ID,
      dnsNames: [],
      ttlSeconds: 3600,
    });
    const caNotAfter = leafOf(svid.fields.trust_bundle[0]!).notAfter.getTime() / 1000;
    expect(svid.expiresAt).toBe(caNotAfter);
    expect(leafOf(svid.fields.certificate).notAfter.getTime() / 1000).toBe(caNotAfter);
    expect(caNotAfter).toBeLessThan(started + 3600);
  });
});
