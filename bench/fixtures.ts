import 'reflect-metadata';
import {
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  webcrypto,
  type KeyObject,
} from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { exportJWK } from 'jose';
import { stringify } from 'yaml';

/**
 * What every scenario of the exchange bench shares: a cluster RSA key whose JWKS a local
 * issuer serves (fetched and cached like a real cluster's), distinct RS256 subject tokens (as
 * kube-apiserver signs them), one role per credential kind and P-256 CSRs.
 */
export const CLUSTER_ISSUER = 'https://bench-cluster.tessera.local';
export const X509_TOKEN_TYPE = 'urn:tessera:params:oauth:token-type:x509-svid';

export interface Fixtures {
  dir: string;
  clusterKey: KeyObject;
  jwksUri: string;
  issuer: string;
  tokens: string[];
  /** Form bodies per scenario kind, round-robin over the tokens (and CSRs). */
  bodies: { es256: string[]; rs256: string[]; x509: string[] };
  close(): Promise<void>;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

const role = (name: string, issue: Record<string, unknown>) => ({
  apiVersion: 'tessera.dev/v1',
  kind: 'Role',
  metadata: { name },
  trustPolicy: {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { Federated: 'bench' },
        Action: 'sts:TokenExchange',
        Condition: { StringLike: { 'kubernetes.io/namespace': 'bench-*' } },
      },
    ],
  },
  issue: {
    audiences: [`${name}-audience`],
    maxLifetime: '1h',
    defaultLifetime: '15m',
    claims: { team: 'bench', workload: '{{namespace}}/{{serviceAccount}}' },
    ...issue,
  },
});

/** `count` PEM CSRs, each for a fresh P-256 key. */
export async function makeCsrs(count: number): Promise<string[]> {
  const csrs: string[] = [];
  for (let i = 0; i < count; i++) {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=bench-${i}`,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    csrs.push(csr.toString('pem'));
  }
  return csrs;
}

/** A cluster issuer serving its JWKS the way kube-apiserver does (max-age one hour). */
async function serveJwks(jwks: object): Promise<{ server: Server; port: number }> {
  const body = JSON.stringify(jwks);
  const server = createServer((request, response) => {
    if (request.url === '/openid/v1/jwks')
      response
        .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' })
        .end(body);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

export async function createFixtures(tokenCount: number): Promise<Fixtures> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = {
    ...(await exportJWK(createPublicKey(privateKey))),
    kid: 'bench',
    alg: 'RS256',
    use: 'sig',
  };
  const { server, port } = await serveJwks({ keys: [jwk] });
  const issuer = CLUSTER_ISSUER;
  const now = Math.floor(Date.now() / 1000);
  const tokens = Array.from({ length: tokenCount }, (_, i) => {
    const claims = {
      aud: ['tessera'],
      exp: now + 3600,
      iat: now,
      nbf: now,
      iss: issuer,
      sub: `system:serviceaccount:bench-${i % 50}:sa-${i}`,
      'kubernetes.io': {
        namespace: `bench-${i % 50}`,
        serviceaccount: { name: `sa-${i}`, uid: randomUUID() },
        pod: { name: `pod-${i}`, uid: randomUUID() },
      },
    };
    const input = `${b64({ alg: 'RS256', kid: 'bench', typ: 'JWT' })}.${b64(claims)}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  });
  mkdirSync(join(dir, 'policies'));
  const roles = [
    role('bench', { algorithm: 'ES256' }),
    role('bench-rs', { algorithm: 'RS256' }),
    role('bench-x509', {
      algorithm: 'ES256',
      x509: {
        spiffeId: 'spiffe://example.org/ns/{{namespace}}/sa/{{serviceAccount}}',
        maxTtl: '1h',
      },
    }),
  ];
  for (const document of roles)
    writeFileSync(join(dir, 'policies', `${document.metadata.name}.yaml`), stringify(document));
  const csrs = await makeCsrs(64);
  const form = (token: string, extra: Record<string, string>) =>
    new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      ...extra,
    }).toString();
  return {
    dir,
    clusterKey: privateKey,
    jwksUri: `http://127.0.0.1:${port}/openid/v1/jwks`,
    issuer,
    tokens,
    bodies: {
      es256: tokens.map((token) => form(token, { resource: 'bench' })),
      rs256: tokens.map((token) => form(token, { resource: 'bench-rs' })),
      x509: tokens.map((token, i) =>
        form(token, {
          resource: 'bench-x509',
          requested_token_type: X509_TOKEN_TYPE,
          csr: csrs[i % csrs.length] as string,
        }),
      ),
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
