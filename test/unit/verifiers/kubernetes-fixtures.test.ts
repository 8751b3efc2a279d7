import { createPublicKey } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { decodeUnverified } from '../../../src/verifiers/index.js';
import { cluster, makeVerifier, outcome } from './helpers.js';

/**
 * Real service-account tokens from real clusters (EKS, minikube), verified with static `jwks`
 * config at a frozen clock: valid inside their lifetime, expired after it; the real negatives
 * and the legacy Secret-based tokens are refused.
 */
const ROOT = '/work/shared/fixtures/kubernetes';

interface TokenFixture {
  id: string;
  token: string;
  expectedClaims: Record<string, unknown> & { iss: string; aud?: string[]; exp?: number };
  jwks?: { keys: Record<string, unknown>[] };
  publicKeyPem?: string;
  x509CertificatePem?: string;
  header: { kid?: string };
  validity: { suggestedFixedClock?: number; exp?: number };
  expectedIdentity: {
    namespace: string;
    serviceAccountName: string;
    serviceAccountUid: string;
    podName?: string;
    podUid?: string;
    nodeName?: string;
  };
}

const read = <T>(path: string): T => JSON.parse(readFileSync(`${ROOT}/${path}`, 'utf8')) as T;
const jwkOf = (pem: string): Record<string, unknown> =>
  createPublicKey(pem).export({ format: 'jwk' });
type KeyMaterial = Pick<TokenFixture, 'jwks' | 'publicKeyPem' | 'x509CertificatePem'> & {
  header?: { kid?: string };
};
/**
 * A PEM becomes a one-key JWKS. The key gets the token's kid when it has one, as the cluster's
 * own JWKS publishes it (kube-apiserver derives it from the key): a JWK without kid never
 * matches a token that names one.
 */
const keysOf = (fixture: KeyMaterial) =>
  fixture.jwks ?? {
    keys: [
      {
        ...jwkOf((fixture.publicKeyPem ?? fixture.x509CertificatePem) as string),
        ...(fixture.header?.kid ? { kid: fixture.header.kid } : {}),
      },
    ],
  };

function verifierFor(
  fixture: KeyMaterial,
  iss: string,
  audiences: string[],
  nowMs: number,
  maxTokenLifetime?: number,
) {
  const entry = cluster({
    name: 'real',
    issuer: iss,
    jwks: keysOf(fixture) as never,
    audiences,
    ...(maxTokenLifetime ? { maxTokenLifetime } : {}),
  });
  return makeVerifier([entry], { now: () => nowMs }).verifier;
}

/**
 * Minikube's older pod tokens were minted for 2 and 10 years; a cluster that issues such tokens
 * must say so with `maxTokenLifetime` (default 24 h). These tests configure each fixture's own.
 */
const lifetimeOf = (fixture: TokenFixture) =>
  (fixture.expectedClaims.exp as number) - (fixture.expectedClaims.iat as number);
const DEFAULT_MAX_TOKEN_LIFETIME = 86_400;
const allowing = (fixture: TokenFixture) =>
  Math.max(lifetimeOf(fixture), DEFAULT_MAX_TOKEN_LIFETIME);

const tokens = readdirSync(`${ROOT}/tokens`).map((file) => read<TokenFixture>(`tokens/${file}`));
const projected = tokens.filter((fixture) => fixture.expectedClaims.exp !== undefined);
const legacy = tokens.filter((fixture) => fixture.expectedClaims.exp === undefined);

describe('real projected tokens', () => {
  test('the fixture set has the EKS and minikube tokens', () => {
    expect(projected.map((fixture) => fixture.id).sort()).toEqual([
      'k8s_federation_with_gcp__minikube-projected-1',
      'k8s_federation_with_gcp__minikube-projected-2',
      'nats-k8s-oidc-callout__eks-projected-token',
      'vault-plugin-auth-kubernetes__projected-minikube-2018',
      'vault-plugin-auth-kubernetes__projected-minikube-2018-expired',
      'vault-plugin-auth-kubernetes__projected-minikube-2020',
      'vault-plugin-auth-kubernetes__projected-minikube-2020-expired',
    ]);
  });

  test.each(projected.map((fixture) => [`ok/${fixture.id}`, fixture] as const))(
    '%s at its suggested clock',
    async (_name, fixture) => {
      const claims = fixture.expectedClaims;
      const verifier = verifierFor(
        fixture,
        claims.iss,
        claims.aud as string[],
        (fixture.validity.suggestedFixedClock as number) * 1000,
        allowing(fixture),
      );
      const identity = await verifier.verify(fixture.token);
      const expected = fixture.expectedIdentity;
      expect(identity).toMatchObject({
        cluster: 'real',
        iss: claims.iss,
        sub: `system:serviceaccount:${expected.namespace}:${expected.serviceAccountName}`,
        aud: claims.aud,
        namespace: expected.namespace,
        serviceAccount: { name: expected.serviceAccountName, uid: expected.serviceAccountUid },
        expiresAt: claims.exp,
        verifiedBy: 'jwks',
      });
      expect(identity.pod).toEqual(
        expected.podName ? { name: expected.podName, uid: expected.podUid } : undefined,
      );
      expect(identity.node?.name).toBe(expected.nodeName);
      expect(identity.claims).toEqual(claims);
    },
  );

  test.each(projected.map((fixture) => [`fail/${fixture.id}-after-exp`, fixture] as const))(
    '%s',
    async (_name, fixture) => {
      const claims = fixture.expectedClaims;
      const verifier = verifierFor(
        fixture,
        claims.iss,
        claims.aud as string[],
        ((claims.exp as number) + 61) * 1000,
        allowing(fixture),
      );
      expect(await outcome(verifier.verify(fixture.token))).toBe(
        '400 invalid_request: subject_token is expired',
      );
    },
  );

  test.each(
    projected.map((fixture) => [`fail/${fixture.id}-for-another-audience`, fixture] as const),
  )('%s', async (_name, fixture) => {
    const claims = fixture.expectedClaims;
    const verifier = verifierFor(
      fixture,
      claims.iss,
      ['sts.example.com'],
      (fixture.validity.suggestedFixedClock as number) * 1000,
      allowing(fixture),
    );
    expect(await outcome(verifier.verify(fixture.token))).toBe(
      '400 invalid_request: subject_token audience not accepted',
    );
  });

  test.each(
    projected.map(
      (fixture) =>
        [
          `${lifetimeOf(fixture) > DEFAULT_MAX_TOKEN_LIFETIME ? 'fail' : 'ok'}/${fixture.id}-with-the-default-max-lifetime`,
          fixture,
        ] as const,
    ),
  )('%s', async (_name, fixture) => {
    const claims = fixture.expectedClaims;
    const verifier = verifierFor(
      fixture,
      claims.iss,
      claims.aud as string[],
      (fixture.validity.suggestedFixedClock as number) * 1000,
    );
    const expected =
      lifetimeOf(fixture) > DEFAULT_MAX_TOKEN_LIFETIME
        ? "400 invalid_request: subject_token lifetime exceeds the cluster's maxTokenLifetime"
        : 'ok';
    expect(await outcome(verifier.verify(fixture.token))).toBe(expected);
  });

  test('ok/decodeUnverified reads the EKS claims exactly', () => {
    const eks = projected.find((fixture) => fixture.id.includes('eks')) as TokenFixture;
    expect(decodeUnverified(eks.token).claims).toEqual(eks.expectedClaims);
  });
});

describe('legacy Secret-based tokens (no exp, no aud)', () => {
  test.each(legacy.map((fixture) => [`fail/${fixture.id}`, fixture] as const))(
    '%s is refused though its signature is valid',
    async (_name, fixture) => {
      const verifier = verifierFor(
        fixture,
        fixture.expectedClaims.iss,
        ['sts.example.com'],
        Date.UTC(2019, 0, 1),
      );
      expect(await outcome(verifier.verify(fixture.token))).toBe(
        '400 invalid_request: subject_token is a legacy service-account token; use a projected token',
      );
    },
  );
});

describe('real negatives', () => {
  const wrongKey = readdirSync(`${ROOT}/negative`)
    .filter((file) => file.includes('wrong-signing-key'))
    .map((file) => read<TokenFixture>(`negative/${file}`));

  test.each(wrongKey.map((fixture) => [`fail/${fixture.id}`, fixture] as const))(
    '%s',
    async (_name, fixture) => {
      const verifier = verifierFor(
        fixture,
        fixture.expectedClaims.iss,
        ['sts.example.com'],
        Date.UTC(2019, 0, 1),
      );
      expect(await outcome(verifier.verify(fixture.token))).toBe(
        '400 invalid_request: subject_token signature is invalid',
      );
    },
  );

  const derived = read<{
    cases: Array<{
      name: string;
      tokenFixture: string;
      token: string;
      keys: Array<{ jwk?: Record<string, unknown>; publicKeyPem?: string }>;
    }>;
  }>('negative/derived__cross-cluster-key-mismatch.json').cases;
  test.each(derived.map((entry) => [`fail/cross-cluster/${entry.name}`, entry] as const))(
    '%s',
    async (_name, entry) => {
      const { claims } = decodeUnverified(entry.token);
      const jwks = { keys: entry.keys.map((key) => key.jwk ?? jwkOf(key.publicKeyPem as string)) };
      const at = typeof claims.iat === 'number' ? (claims.iat + 60) * 1000 : Date.now();
      const verifier = verifierFor({ jwks }, claims.iss as string, claims.aud as string[], at);
      expect(await outcome(verifier.verify(entry.token))).toMatch(
        /^400 invalid_request: subject_token (signature is invalid|signing key is unknown)$/,
      );
    },
  );

  test('fail/spire-2046-bit-key: the weak key is skipped at ingestion, so the token has no key', async () => {
    const fixture = read<TokenFixture>('unverified/spire__vault-k8s-auth-testdata-token.json');
    const claims = fixture.expectedClaims;
    const verifier = verifierFor(
      fixture,
      claims.iss,
      claims.aud as string[],
      (fixture.validity.suggestedFixedClock as number) * 1000,
    );
    expect(await outcome(verifier.verify(fixture.token))).toBe(
      '400 invalid_request: subject_token signing key is unknown',
    );
  });
});
