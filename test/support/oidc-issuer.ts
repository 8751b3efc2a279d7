import 'reflect-metadata';
import { generateKeyPairSync, randomUUID, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { CompactSign, calculateJwkThumbprint, exportJWK } from 'jose';

/**
 * A real HTTPS OIDC issuer on 127.0.0.1 with its own throwaway CA, serving a Kubernetes-style
 * discovery document and JWKS. Tests sign projected-token-shaped JWTs with it, rotate its keys,
 * take it down, change its Cache-Control and count what was fetched. Several issuers may share
 * one server (`addIssuer`), so two issuers can differ only by path; `close()` on any of them
 * stops the shared server.
 *
 * @example
 *   const idp = await startOidcIssuer({ path: '/cluster-a' });
 *   const token = await idp.sign(projectedClaims(idp.issuer, { audience: 'sts.example.com' }));
 *   idp.requests('jwks'); await idp.close();
 */
export type IssuerAlgorithm = 'RS256' | 'ES256' | 'PS256' | 'ES384' | 'EdDSA';

export interface OidcIssuerOptions {
  /** Path of the issuer under the server's origin, e.g. `/cluster-a` (default: none). */
  path?: string;
  alg?: IssuerAlgorithm;
  /** Cache-Control of the JWKS response (default `public, max-age=3600`, as kube-apiserver sends). */
  cacheControl?: string;
}

export interface SigningKey {
  kid: string;
  alg: IssuerAlgorithm;
  privateKey: KeyObject;
  publicJwk: Record<string, unknown>;
}

export interface OidcIssuer {
  issuer: string;
  jwksUri: string;
  discoveryUrl: string;
  caFile: string;
  caPem: string;
  /** The key that signs now. */
  currentKey(): SigningKey;
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /** A new signing key; the old one stays in the JWKS unless `dropOld`. Returns the new kid. */
  rotate(options?: { dropOld?: boolean }): Promise<string>;
  /** Requests seen for `'discovery'`, `'jwks'`, an absolute path, or (no argument) all paths of the server. */
  requests(path?: 'discovery' | 'jwks' | `/${string}`): number;
  /** Down: every connection to the server is reset, as when the issuer is unreachable. */
  setDown(down: boolean): void;
  setCacheControl(value: string | undefined): void;
  /** Serve this JWKS body instead of the real keys (undefined: back to the real keys). */
  setJwksOverride(body: unknown): void;
  /** Serve this discovery document instead of the real one (undefined: back to normal). */
  setDiscoveryOverride(body: unknown): void;
  /** Answer the JWKS path with a 302 to `location` (undefined: serve the JWKS again). */
  setJwksRedirect(location: string | undefined): void;
  addIssuer(options?: OidcIssuerOptions): Promise<OidcIssuer>;
  close(): Promise<void>;
}

interface Tenant {
  path: string;
  alg: IssuerAlgorithm;
  keys: SigningKey[];
  cacheControl: string | undefined;
  jwksOverride: unknown;
  discoveryOverride: unknown;
  jwksRedirect: string | undefined;
}

export async function startOidcIssuer(options: OidcIssuerOptions = {}): Promise<OidcIssuer> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-oidc-'));
  const pki = await createPki();
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.caPem);
  const counts = new Map<string, number>();
  const tenants = new Map<string, Tenant>();
  let down = false;

  const server: Server = createServer(
    { key: pki.keyPem, cert: pki.certPem },
    (request, response) => {
      const path = new URL(request.url ?? '/', 'https://127.0.0.1').pathname;
      counts.set(path, (counts.get(path) ?? 0) + 1);
      if (down) {
        request.socket.destroy();
        return;
      }
      serve(path, request, response);
    },
  );
  const serve = (path: string, _request: IncomingMessage, response: ServerResponse): void => {
    for (const tenant of tenants.values()) {
      if (path === `${tenant.path}/.well-known/openid-configuration`) {
        return json(response, tenant.discoveryOverride ?? discovery(tenant));
      }
      if (path === `${tenant.path}/openid/v1/jwks` && tenant.jwksRedirect) {
        response.writeHead(302, { location: tenant.jwksRedirect }).end();
        return;
      }
      if (path === `${tenant.path}/openid/v1/jwks`) {
        const body = tenant.jwksOverride ?? { keys: tenant.keys.map((key) => key.publicJwk) };
        return json(
          response,
          body,
          tenant.cacheControl ? { 'cache-control': tenant.cacheControl } : {},
        );
      }
    }
    response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const discovery = (tenant: Tenant) => ({
    issuer: `${origin}${tenant.path}`,
    jwks_uri: `${origin}${tenant.path}/openid/v1/jwks`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [tenant.alg],
  });

  const addIssuer = async (tenantOptions: OidcIssuerOptions = {}): Promise<OidcIssuer> => {
    const path = tenantOptions.path ?? '';
    if (tenants.has(path)) throw new Error(`issuer path ${path} already served`);
    const alg = tenantOptions.alg ?? 'RS256';
    const tenant: Tenant = {
      path,
      alg,
      keys: [await generateSigningKey(alg)],
      cacheControl:
        'cacheControl' in tenantOptions ? tenantOptions.cacheControl : 'public, max-age=3600',
      jwksOverride: undefined,
      discoveryOverride: undefined,
      jwksRedirect: undefined,
    };
    tenants.set(path, tenant);
    const issuer = `${origin}${path}`;
    const currentKey = () => tenant.keys[tenant.keys.length - 1] as SigningKey;
    return {
      issuer,
      jwksUri: `${issuer}/openid/v1/jwks`,
      discoveryUrl: `${issuer}/.well-known/openid-configuration`,
      caFile,
      caPem: pki.caPem,
      currentKey,
      async sign(claims, header = {}) {
        const key = currentKey();
        const protectedHeader = { alg: key.alg, kid: key.kid, ...header } as { alg: string };
        return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
          .setProtectedHeader(protectedHeader)
          .sign(key.privateKey);
      },
      async rotate(rotateOptions = {}) {
        const next = await generateSigningKey(tenant.alg);
        tenant.keys = rotateOptions.dropOld ? [next] : [...tenant.keys, next];
        return next.kid;
      },
      requests(which) {
        if (which === undefined) return [...counts.values()].reduce((sum, count) => sum + count, 0);
        const path =
          which === 'discovery'
            ? `${tenant.path}/.well-known/openid-configuration`
            : which === 'jwks'
              ? `${tenant.path}/openid/v1/jwks`
              : which;
        return counts.get(path) ?? 0;
      },
      setDown(value) {
        down = value;
      },
      setCacheControl(value) {
        tenant.cacheControl = value;
      },
      setJwksOverride(body) {
        tenant.jwksOverride = body;
      },
      setDiscoveryOverride(body) {
        tenant.discoveryOverride = body;
      },
      setJwksRedirect(location) {
        tenant.jwksRedirect = location;
      },
      addIssuer,
      async close() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  };
  return addIssuer(options);
}

/** Claims shaped like a Kubernetes projected service-account token. */
export function projectedClaims(
  issuer: string,
  options: {
    audience?: string | string[];
    nowSeconds?: number;
    lifetimeSeconds?: number;
    namespace?: string;
    serviceAccount?: string;
  } = {},
): Record<string, unknown> {
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const namespace = options.namespace ?? 'default';
  const serviceAccount = options.serviceAccount ?? 'app';
  return {
    aud: Array.isArray(options.audience)
      ? options.audience
      : [options.audience ?? 'sts.example.com'],
    exp: now + (options.lifetimeSeconds ?? 3600),
    iat: now,
    nbf: now,
    iss: issuer,
    jti: randomUUID(),
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    'kubernetes.io': {
      namespace,
      node: { name: 'node-1', uid: '5d1a0a54-6b6a-4d7e-9d8e-1f0c2b3a4d5e' },
      pod: {
        name: `${serviceAccount}-7c9f8d6b5-x2x4z`,
        uid: 'b6c258f5-d3b4-11e8-8ef4-080027e55ea8',
      },
      serviceaccount: { name: serviceAccount, uid: 'b389b3b2-d302-11e8-b14c-080027e55ea8' },
    },
  };
}

/** A fresh key pair with its public JWK (kid = RFC 7638 thumbprint, as Kubernetes derives its own). */
export async function generateSigningKey(alg: IssuerAlgorithm = 'RS256'): Promise<SigningKey> {
  const pair =
    alg === 'RS256' || alg === 'PS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' });
  const jwk = await exportJWK(pair.publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, alg, privateKey: pair.privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}

function json(response: ServerResponse, body: unknown, headers: Record<string, string> = {}): void {
  response
    .writeHead(200, { 'content-type': 'application/json', ...headers })
    .end(JSON.stringify(body));
}

const DAY = 86_400_000;
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A throwaway CA and a 127.0.0.1/localhost serving certificate signed by it. */
async function createPki(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const crypto: webcrypto.Crypto = webcrypto;
  const validity = {
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 7 * DAY),
  };
  const caKeys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=Tessera test OIDC CA',
      keys: caKeys,
      ...validity,
      signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
      ],
    },
    crypto,
  );
  const leafKeys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create(
    {
      subject: 'CN=127.0.0.1',
      issuer: ca.subject,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      ...validity,
      signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'ip', value: '127.0.0.1' },
          { type: 'dns', value: 'localhost' },
        ]),
      ],
    },
    crypto,
  );
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
  return { caPem: ca.toString('pem'), certPem: leaf.toString('pem'), keyPem };
}
