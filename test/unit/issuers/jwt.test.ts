import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { issueJwt } from '../../../src/issuers/jwt.js';
import type { SigningKey } from '../../../src/keys/types.js';
import type { CompiledRole } from '../../../src/trust-policies/types.js';
import type { WorkloadIdentity } from '../../../src/verifiers/types.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKey = createPublicKey(privateKey);
const key: SigningKey = {
  kid: 'test-kid',
  alg: 'ES256',
  publicJwk: {},
  sign: (data) => Promise.resolve(sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
};
const identity: WorkloadIdentity = {
  cluster: 'prod',
  iss: 'https://oidc.example.com',
  sub: 'system:serviceaccount:orders:api',
  aud: ['sts'],
  namespace: 'orders',
  serviceAccount: { name: 'api', uid: 'sa-uid' },
  pod: { name: 'api-1', uid: 'pod-uid' },
  claims: {},
  verifiedBy: 'jwks',
};
const role = (claims: Record<string, unknown>): CompiledRole =>
  ({
    name: 'orders',
    file: 'orders.yaml',
    issue: { audiences: ['a'], algorithm: 'ES256', maxLifetime: 3600, defaultLifetime: 900, claims: () => claims },
  }) as unknown as CompiledRole;

async function payloadOf(token: string): Promise<Record<string, unknown>> {
  const { payload, protectedHeader } = await compactVerify(token, publicKey);
  expect(protectedHeader).toEqual({ alg: 'ES256', kid: 'test-kid', typ: 'JWT' });
  return JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
}

describe('issueJwt', () => {
  it('ok/claims-of-design', async () => {
    const issued = await issueJwt({ key, issuer: 'https://sts.example.com', role: role({ team: 'orders' }), identity, audience: ['a'], lifetimeSeconds: 600, now: 1_800_000_000 });
    const payload = await payloadOf(issued.token);
    expect(payload).toEqual({
      team: 'orders',
      iss: 'https://sts.example.com',
      sub: 'system:serviceaccount:orders:api',
      aud: 'a',
      iat: 1_800_000_000,
      nbf: 1_800_000_000,
      exp: 1_800_000_600,
      jti: issued.jti,
      'kubernetes.io': { namespace: 'orders', serviceaccount: { name: 'api', uid: 'sa-uid' }, pod: { name: 'api-1', uid: 'pod-uid' } },
      tessera: { role: 'orders', cluster: 'prod' },
    });
  });

  it('fail/role-claims-cannot-forge-reserved-claims', async () => {
    const forged = { scope: 'admin', act: { sub: 'system:serviceaccount:kube-system:root' }, sub: 'root', exp: 9_999_999_999, tessera: { role: 'admin' }, cnf: { jkt: 'x' }, team: 'orders' };
    const issued = await issueJwt({ key, issuer: 'https://sts.example.com', role: role(forged), identity, audience: ['a', 'b'], lifetimeSeconds: 600, now: 1_800_000_000 });
    const payload = await payloadOf(issued.token);
    expect(payload.scope).toBeUndefined();
    expect(payload.act).toBeUndefined();
    expect(payload.cnf).toBeUndefined();
    expect(payload).toMatchObject({ sub: 'system:serviceaccount:orders:api', exp: 1_800_000_600, tessera: { role: 'orders', cluster: 'prod' }, aud: ['a', 'b'], team: 'orders' });
  });
});

describe('issueJwt: jti', () => {
  it('ok/every-token-has-its-own-128-bit-jti', async () => {
    const jtis = new Set<string>();
    for (let index = 0; index < 600; index += 1) {
      const issued = await issueJwt({ key, issuer: 'https://sts.example.com', role: role({}), identity, audience: ['a'], lifetimeSeconds: 60, now: 1_800_000_000 });
      expect(issued.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(issued.claims.jti).toBe(issued.jti);
      jtis.add(issued.jti);
    }
    expect(jtis.size).toBe(600);
  });

  it('ok/a-role-claim-named-__proto__-is-an-ordinary-member', async () => {
    const claims = JSON.parse('{"__proto__":{"admin":true},"team":"orders"}') as Record<string, unknown>;
    const issued = await issueJwt({ key, issuer: 'https://sts.example.com', role: role(claims), identity, audience: ['a'], lifetimeSeconds: 60, now: 1_800_000_000 });
    const payload = await payloadOf(issued.token);
    expect(Object.getPrototypeOf(issued.claims)).toBe(Object.prototype);
    expect((issued.claims as { admin?: unknown }).admin).toBeUndefined();
    expect(Object.keys(payload)).toContain('__proto__');
  });
});
