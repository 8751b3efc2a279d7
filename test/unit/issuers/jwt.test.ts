import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { createJwtIssuer, jwtClaims, type JwtRequest } from '../../../src/issuers/index.js';
import type { SigningKey } from '../../../src/keys/types.js';
import { renderIssueRequest } from '../../../src/trust-policies/index.js';
import type { CompiledRole } from '../../../src/trust-policies/types.js';
import type { WorkloadIdentity } from '../../../src/verifiers/types.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKey = createPublicKey(privateKey);
const key: SigningKey = {
  kid: 'test-kid',
  alg: 'ES256',
  publicJwk: {},
  sign: (data) =>
    Promise.resolve(sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
};
const NOW = 1_800_000_000;
const jwt = createJwtIssuer({
  keys: { signingKey: () => Promise.resolve(key) },
  issuer: () => 'https://sts.example.com',
  now: () => NOW * 1000,
});
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
    issue: {
      audiences: ['a'],
      algorithm: 'ES256',
      maxLifetime: 3600,
      defaultLifetime: 900,
      claims: () => claims,
    },
  }) as unknown as CompiledRole;
/** The role rendered for `identity`, as the exchange does before issuing. */
const rendered = (
  claims: Record<string, unknown>,
  audiences = ['a'],
  durationSeconds = 600,
): JwtRequest =>
  renderIssueRequest('jwt', role(claims), { identity, audiences, scope: [], durationSeconds });
const plain = (overrides: Partial<JwtRequest> = {}): JwtRequest => ({
  algorithm: 'ES256',
  subject: 'system:serviceaccount:orders:api',
  audiences: ['a'],
  lifetimeSeconds: 60,
  claims: {},
  scope: [],
  tessera: { role: 'orders', cluster: 'prod' },
  ...overrides,
});

async function payloadOf(token: string): Promise<Record<string, unknown>> {
  const { payload, protectedHeader } = await compactVerify(token, publicKey);
  expect(protectedHeader).toEqual({ alg: 'ES256', kid: 'test-kid', typ: 'JWT' });
  return JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
}

describe('JWT issuer', () => {
  it('ok/claims-of-design', async () => {
    const issued = await jwt.issue(rendered({ team: 'orders' }));
    const payload = await payloadOf(issued.fields.access_token);
    expect(payload).toEqual({
      team: 'orders',
      iss: 'https://sts.example.com',
      sub: 'system:serviceaccount:orders:api',
      aud: 'a',
      iat: 1_800_000_000,
      nbf: 1_800_000_000,
      exp: 1_800_000_600,
      jti: issued.jti,
      'kubernetes.io': {
        namespace: 'orders',
        serviceaccount: { name: 'api', uid: 'sa-uid' },
        pod: { name: 'api-1', uid: 'pod-uid' },
      },
      tessera: { role: 'orders', cluster: 'prod' },
    });
    expect(issued.fields).toEqual({ access_token: issued.fields.access_token, expires_in: 600 });
    expect(issued.expiresAt).toBe(1_800_000_600);
  });

  it('fail/role-claims-cannot-forge-reserved-claims', async () => {
    const forged = {
      scope: 'admin',
      act: { sub: 'system:serviceaccount:kube-system:root' },
      sub: 'root',
      exp: 9_999_999_999,
      tessera: { role: 'admin' },
      cnf: { jkt: 'x' },
      team: 'orders',
    };
    const issued = await jwt.issue(rendered(forged, ['a', 'b']));
    const payload = await payloadOf(issued.fields.access_token);
    expect(payload.scope).toBeUndefined();
    expect(payload.act).toBeUndefined();
    expect(payload.cnf).toBeUndefined();
    expect(payload).toMatchObject({
      sub: 'system:serviceaccount:orders:api',
      exp: 1_800_000_600,
      tessera: { role: 'orders', cluster: 'prod' },
      aud: ['a', 'b'],
      team: 'orders',
    });
  });

  it('fail/request-claims-never-shadow-the-issuers-own', async () => {
    const claims = {
      sub: 'root',
      act: { sub: 'root' },
      scope: 'admin',
      exp: 9_999_999_999,
      'kubernetes.io': { namespace: 'kube-system' },
      team: 'orders',
    };
    const payload = await payloadOf((await jwt.issue(plain({ claims }))).fields.access_token);
    expect(payload).toMatchObject({
      sub: 'system:serviceaccount:orders:api',
      exp: 1_800_000_060,
      team: 'orders',
    });
    expect([payload.act, payload.scope, payload['kubernetes.io']]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('ok/scope-and-actor', async () => {
    const issued = await jwt.issue(
      plain({
        scope: ['read', 'write'],
        actor: { sub: 'system:serviceaccount:platform:gateway', iss: 'https://oidc.example.com' },
      }),
    );
    const payload = await payloadOf(issued.fields.access_token);
    expect(payload).toMatchObject({
      scope: 'read write',
      act: { sub: 'system:serviceaccount:platform:gateway', iss: 'https://oidc.example.com' },
    });
    expect(issued.fields.scope).toBe('read write');
  });
});

describe('JWT issuer: jti', () => {
  it('ok/every-token-has-its-own-128-bit-jti', async () => {
    const jtis = new Set<string>();
    for (let index = 0; index < 600; index += 1) {
      const issued = await jwt.issue(plain());
      expect(issued.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect((await payloadOf(issued.fields.access_token)).jti).toBe(issued.jti);
      jtis.add(issued.jti ?? '');
    }
    expect(jtis.size).toBe(600);
  });

  it('ok/a-role-claim-named-__proto__-is-an-ordinary-member', async () => {
    const claims = JSON.parse('{"__proto__":{"admin":true},"team":"orders"}') as Record<
      string,
      unknown
    >;
    const request = rendered(claims);
    const built = jwtClaims(request, 'https://sts.example.com', NOW, 'jti');
    expect(Object.getPrototypeOf(built)).toBe(Object.prototype);
    expect((built as { admin?: unknown }).admin).toBeUndefined();
    const payload = await payloadOf((await jwt.issue(request)).fields.access_token);
    expect(Object.keys(payload)).toContain('__proto__');
  });
});
