import { createPrivateKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirectories } from '../files.js';
import type { ClusterConfig, Config } from '../config/index.js';
import { signingKeyFromPrivateKey, signJws } from '../keys/index.js';

/**
 * The dev cluster: a local stand-in for a Kubernetes service-account issuer, so a newcomer
 * can exchange a token with no cluster at all. `tessera dev-token` signs projected-token-shaped
 * JWTs with its key; the broker trusts its public key as the static JWKS of cluster `dev`.
 */
export type DevClusterConfig = NonNullable<Config['devCluster']>;

export interface DevCluster {
  /** The cluster entry the verifier sees: static JWKS, no network. */
  cluster: ClusterConfig;
  signToken(options: DevTokenOptions): Promise<string>;
}

export interface DevTokenOptions {
  namespace: string;
  serviceAccount: string;
  audience: string | string[];
  ttlSeconds?: number;
  pod?: string;
  now?: number;
}

const KEY_FILE = 'signing-key.pem';

async function loadOrCreateKey(dir: string): Promise<KeyObject> {
  const path = join(dir, KEY_FILE);
  try {
    return createPrivateKey(await readFile(path));
  } catch (error) {
    if (!isMissingFile(error)) throw error;
  }
  makeDirectories(dir, 0o700);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  // `wx`: two processes starting at once must not overwrite each other's key.
  await writeFile(path, privateKey.export({ format: 'pem', type: 'pkcs8' }), {
    mode: 0o600,
    flag: 'wx',
  });
  await chmod(path, 0o600);
  return privateKey;
}

const isMissingFile = (error: unknown): boolean =>
  error instanceof Error && 'code' in error && error.code === 'ENOENT';

/**
 * Load (or create on first use) the dev cluster's key.
 *
 * @example const dev = await loadDevCluster(config.devCluster, config.audience);
 */
export async function loadDevCluster(
  config: DevClusterConfig,
  audience: string,
): Promise<DevCluster> {
  // Signed like the broker's own tokens (same JWK, kid thumbprint and JWS form), from a key kept in the keyDir.
  const key = signingKeyFromPrivateKey(await loadOrCreateKey(config.keyDir), 'ES256');
  const cluster: ClusterConfig = {
    name: config.name,
    issuer: config.issuer,
    verify: 'jwks',
    audiences: [audience],
    jwks: { keys: [{ ...key.publicJwk, kty: 'EC' }] },
    allowInsecure: false,
  };
  return {
    cluster,
    signToken(options) {
      const now = options.now ?? Math.floor(Date.now() / 1000);
      const pod = options.pod ?? `${options.serviceAccount}-${randomUUID().slice(0, 8)}`;
      const claims = {
        aud: Array.isArray(options.audience) ? options.audience : [options.audience],
        exp: now + (options.ttlSeconds ?? 600),
        iat: now,
        nbf: now,
        iss: config.issuer,
        jti: randomUUID(),
        'kubernetes.io': {
          namespace: options.namespace,
          node: { name: 'dev-node', uid: randomUUID() },
          pod: { name: pod, uid: randomUUID() },
          serviceaccount: { name: options.serviceAccount, uid: randomUUID() },
        },
        sub: `system:serviceaccount:${options.namespace}:${options.serviceAccount}`,
      };
      return signJws(key, {}, claims);
    },
  };
}
