import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../../src/observability/index.js';
import type { SubjectTokenVerifier } from '../../../src/verifiers/index.js';
import { projectedClaims, startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { cluster, makeVerifier, outcome, refusal } from './helpers.js';

/**
 * Many clusters: the token's `iss` picks exactly one cluster by exact string match, never by
 * prefix; each cluster keeps its own keys, audiences and verify mode.
 */
let a: OidcIssuer;
let b: OidcIssuer;
let nested: OidcIssuer;
let verifier: SubjectTokenVerifier;
let dir: string;
const NOT_TRUSTED = '400 invalid_request: subject_token issuer is not trusted';

beforeAll(async () => {
  // One server, three issuers that differ only by path.
  a = await startOidcIssuer({ path: '/clusters/a' });
  b = await a.addIssuer({ path: '/clusters/b', alg: 'ES256' });
  nested = await a.addIssuer({ path: '/clusters/a/nested' });
  // An API server nobody listens on: a review, if one were ever asked for, could only fail.
  dir = await mkdtemp(join(tmpdir(), 'tessera-routing-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
      'users: [{name: u, user: {token: not-a-real-token}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
    ].join('\n'),
  );
  ({ verifier } = makeVerifier([
    cluster({ name: 'a', issuer: a.issuer, caFile: a.caFile }),
    cluster({
      name: 'b',
      issuer: b.issuer,
      caFile: b.caFile,
      audiences: ['https://vault.example.com'],
    }),
    cluster({
      name: 'nested',
      issuer: nested.issuer,
      caFile: nested.caFile,
      verify: 'jwks+tokenreview',
      kubeconfig,
    }),
  ]));
});
afterAll(async () => {
  await verifier.close();
  await a.close();
  await rm(dir, { recursive: true, force: true });
});

describe('routing by iss', () => {
  test('ok/issuers-differing-only-by-path-route-to-their-own-cluster', async () => {
    const fromA = await verifier.verify(await a.sign(projectedClaims(a.issuer)));
    const fromB = await verifier.verify(
      await b.sign(projectedClaims(b.issuer, { audience: 'https://vault.example.com' })),
    );
    expect([fromA.cluster, fromA.iss, fromB.cluster, fromB.iss]).toEqual([
      'a',
      a.issuer,
      'b',
      b.issuer,
    ]);
  });

  const cases: Array<[string, () => Promise<string>, string]> = [
    [
      'fail/token-of-a-claiming-b (b has no such key)',
      async () => a.sign(projectedClaims(b.issuer, { audience: 'https://vault.example.com' })),
      '400 invalid_request: subject_token signing key is unknown',
    ],
    [
      'fail/iss-that-is-a-prefix-of-a-configured-one',
      async () => a.sign(projectedClaims(a.issuer.replace(/\/a$/, ''))),
      NOT_TRUSTED,
    ],
    [
      'fail/iss-that-extends-a-configured-one',
      async () => a.sign(projectedClaims(`${a.issuer}x`)),
      NOT_TRUSTED,
    ],
    [
      'fail/iss-with-different-case',
      async () => a.sign(projectedClaims(a.issuer.replace('clusters', 'CLUSTERS'))),
      NOT_TRUSTED,
    ],
    [
      'fail/iss-as-an-array',
      async () => a.sign({ ...projectedClaims(a.issuer), iss: [a.issuer] }),
      NOT_TRUSTED,
    ],
    [
      'fail/cluster-audiences-replace-the-broker-audience',
      async () => b.sign(projectedClaims(b.issuer, { audience: 'sts.example.com' })),
      '400 invalid_request: subject_token audience not accepted',
    ],
    [
      'fail/jwks+tokenreview-checks-the-signature-before-any-review',
      async () => a.sign(projectedClaims(nested.issuer), { kid: nested.currentKey().kid }),
      '400 invalid_request: subject_token signature is invalid',
    ],
  ];
  test.each(cases)('%s', async (_name, makeToken, expected) => {
    expect(await outcome(verifier.verify(await makeToken()))).toBe(expected);
  });

  test.each([
    [
      'fail/a-subject-token-refusal-names-subject_token (the default)',
      undefined,
      'subject_token issuer is not trusted',
      undefined,
    ],
    [
      'fail/an-actor-token-refusal-names-actor_token',
      'actor_token',
      'actor_token issuer is not trusted',
      'actor',
    ],
  ] as const)('%s', async (_name, parameter, description, token) => {
    const error = await refusal(
      verifier.verify(
        await a.sign(projectedClaims(`${a.issuer}x`)),
        parameter ? { parameter } : {},
      ),
    );
    expect([
      error.status,
      error.code,
      error.description,
      error.reason,
      error.detail?.token,
    ]).toEqual([400, 'invalid_request', description, 'unknown_issuer', token]);
  });

  test('ok/status-lists-every-cluster', () => {
    expect(verifier.status().map((status) => [status.cluster, status.issuer])).toEqual([
      ['a', a.issuer],
      ['b', b.issuer],
      ['nested', nested.issuer],
    ]);
  });
});

describe('allowInsecure', () => {
  // http is possible wherever allowInsecure is set: an https issuer's discovery may name an http jwks_uri.
  test.each([
    ['warn/http-issuer', { issuer: 'http://127.0.0.1:1/lab', allowInsecure: true }, 1],
    [
      'warn/https-issuer-with-allowInsecure',
      { issuer: 'https://127.0.0.1:1/lab', allowInsecure: true },
      1,
    ],
    [
      'ok/https-issuer-without-allowInsecure',
      { issuer: 'https://127.0.0.1:1/lab', allowInsecure: false },
      0,
    ],
  ] as const)('%s', async (_name, config, warnings) => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({
      destination: {
        write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
      },
    });
    const { verifier: lab } = makeVerifier([cluster({ name: 'lab', ...config })], { logger });
    expect(lines.filter((line) => String(line.msg).includes('plain http'))).toEqual(
      Array(warnings).fill(
        expect.objectContaining({ level: 40, cluster: 'lab', issuer: config.issuer }),
      ),
    );
    await lab.close();
  });
});
