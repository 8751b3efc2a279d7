import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { parseConfig } from '../../src/config/index.js';
import { createKeyProvider } from '../../src/keys/index.js';
import type { JwsAlgorithm, KeyProvider, SigningKey } from '../../src/keys/types.js';
import { silentLogger } from '../../src/observability/index.js';

/** A node:crypto SigningKey (JWS-form signatures), for unit tests that need no provider. */
export function testSigningKey(
  alg: Extract<JwsAlgorithm, 'ES256' | 'RS256'> = 'ES256',
  privateKey?: KeyObject,
): SigningKey {
  const key =
    privateKey ??
    (alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 })
    ).privateKey;
  const publicJwk = {
    ...(key.export({ format: 'jwk' }) as JWK),
    alg,
    use: 'sig',
    kid: `test-${alg}`,
  };
  delete publicJwk.d;
  for (const name of ['p', 'q', 'dp', 'dq', 'qi'] as const) delete publicJwk[name];
  return {
    kid: `test-${alg}`,
    alg,
    publicJwk,
    sign: (data) =>
      Promise.resolve(
        new Uint8Array(
          sign('sha256', data, alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key),
        ),
      ),
  };
}

/** `provider` whose named keys fail while `state.failing` (an HSM that went away). */
export function withFailingNamedKeys(
  provider: KeyProvider,
  state: { failing: boolean },
): KeyProvider {
  return {
    ...provider,
    kind: provider.kind,
    namedKey: async (name, alg) => {
      if (state.failing) throw new Error('CKR_TOKEN_NOT_PRESENT');
      const key = await provider.namedKey(name, alg);
      return {
        ...key,
        kid: key.kid,
        alg: key.alg,
        publicJwk: key.publicJwk,
        sign: (data) =>
          state.failing ? Promise.reject(new Error('CKR_DEVICE_REMOVED')) : key.sign(data),
      };
    },
  };
}

/** The real local key provider in `dir`, without JWT keys or a rotation timer. */
export function localKeyProvider(dir: string): Promise<KeyProvider> {
  const config = parseConfig({
    issuer: 'https://sts.example.com',
    audience: 'tessera',
    keys: { provider: 'local', dir },
  });
  return createKeyProvider(config.keys, {
    logger: silentLogger(),
    autoRotate: false,
    applyAtStart: false,
  });
}

export function tempDir(prefix = 'tessera-x509-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs openssl; returns stdout, or throws with stderr. */
export function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, {
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
}

/** A CSR made by `openssl req` for a fresh key; `extra` adds e.g. `-addext` arguments. */
export function opensslCsr(
  dir: string,
  keyArgs: string[],
  extra: string[] = [],
): { csrPem: string; keyPem: string } {
  const keyFile = join(dir, `key-${Math.random().toString(36).slice(2)}.pem`);
  openssl(['genpkey', ...keyArgs, '-out', keyFile]);
  const csrPem = openssl([
    'req',
    '-new',
    '-key',
    keyFile,
    '-subj',
    '/CN=requested.example.com/O=Requested',
    ...extra,
  ]);
  return { csrPem, keyPem: execFileSync('cat', [keyFile], { encoding: 'utf8' }) };
}

export const EC_P256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
export const EC_P384 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'];
export const RSA_2048 = ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];

export function writeFiles(dir: string, files: Record<string, string>): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) {
    paths[name] = join(dir, name);
    writeFileSync(paths[name], text);
  }
  return paths;
}
