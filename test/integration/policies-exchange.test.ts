import { Command } from 'commander';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraApp } from '../../src/app.js';
import { registerPolicyCommands } from '../../src/cli/policy.js';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * Shadow mode, guardrails, derived claims, CEL and the 403 description, end to end through
 * POST /v1/token, and `policy explain` agreeing with the live decision.
 */

const GOLDEN_POLICIES = 'test/unit/trust-policies/fixtures/golden/policies';
const DERIVED = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: aws-abac }
trustPolicy:
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:AssumeRoleWithWebIdentity
      Condition: { StringLike: { kubernetes.io/namespace: "team-*" } }
issue:
  audiences: [sts.amazonaws.com]
  subject: "{{cluster}}:{{namespace}}:{{serviceAccount}}"
  claims:
    workload: "{{namespace}}/{{pod}}"
    node: "{{claims.kubernetes.io.node.name}}"
    https://aws.amazon.com/tags:
      principal_tags: { cluster: "{{cluster}}", namespace: "{{namespace}}" }
      transitive_tag_keys: [namespace]
`;

/** Tag values from claims the token shapes: within AWS's limits they pass, an absent claim drops its tag, else the exchange is refused before AWS sees the token. */
const TAG_FROM_CLAIM = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: aws-tag-from-claim }
trustPolicy:
  Statement: { Effect: Allow, Principal: { Federated: dev }, Action: sts:TokenExchange }
issue:
  audiences: [aws-tags]
  claims:
    https://aws.amazon.com/tags:
      principal_tags: { pod: "{{claims.kubernetes.io.pod.name}}", team: "{{claims.team}}" }
`;

/** A subject built from names: a name that carries a ":" would add fields to it. */
const SUBJECT_FROM_NAMES = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: subject-from-names }
trustPolicy:
  Statement: { Effect: Allow, Principal: { Federated: dev }, Action: sts:TokenExchange }
issue:
  audiences: [subjects]
  subject: "system:serviceaccount:{{namespace}}:{{serviceAccount}}"
`;

let root: string;
let t: TestApp;
let app: TesseraApp;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'tessera-policies-e2e-'));
  const policies = join(root, 'policies');
  cpSync(GOLDEN_POLICIES, policies, { recursive: true });
  writeFileSync(join(policies, 'aws-abac.yaml'), DERIVED);
  writeFileSync(join(policies, 'aws-tag-from-claim.yaml'), TAG_FROM_CLAIM);
  writeFileSync(join(policies, 'subject-from-names.yaml'), SUBJECT_FROM_NAMES);
  t = await startTestApp({ policies });
  app = t.app;
  writeFileSync(
    join(root, 'config.yaml'),
    JSON.stringify({ ...app.config, listen: undefined, issuerFollowsListener: undefined }),
  );
});

afterAll(async () => {
  await t?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function token(namespace: string, serviceAccount: string, pod?: string): Promise<string> {
  if (!app.devCluster) throw new Error('the test config has a dev cluster');
  return await app.devCluster.signToken({
    namespace,
    serviceAccount,
    audience: 'tessera',
    ...(pod ? { pod } : {}),
  });
}

async function exchange(
  subject: string | Promise<string>,
  params: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    subject_token: await subject,
    ...params,
  });
  const response = await app.request('/v1/token', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('POST /v1/token with trust policies', () => {
  it('ok/allowed-with-guardrail-lifetime-cap', async () => {
    const result = await exchange(token('orders-api', 'api'), {
      resource: 'orders-reader',
      duration_seconds: '7200',
    });
    expect(result.status).toBe(200);
    // The role allows 2h; the guardrail caps every role at 1h.
    expect(result.body.expires_in).toBe(3600);
  });

  it('fail/explicit-deny-of-role-names-the-sid', async () => {
    expect(await exchange(token('orders-sandbox', 'api'), { resource: 'orders-reader' })).toEqual({
      status: 403,
      body: {
        error: 'access_denied',
        error_description:
          'role "orders-reader" denied: explicit Deny statement "NoSandbox" of the role matched',
      },
    });
  });

  it('fail/guardrail-deny-applies-to-every-role', async () => {
    expect(
      await exchange(token('kube-system', 'deployer', 'deployer-1'), { resource: 'ci-deployer' }),
    ).toEqual({
      status: 403,
      body: {
        error: 'access_denied',
        error_description:
          'role "ci-deployer" denied: explicit Deny statement "NeverKubeSystem" of guardrail "baseline" matched',
      },
    });
  });

  it('fail/first-failing-condition-and-the-value-carried', async () => {
    expect(await exchange(token('billing', 'api'), { resource: 'orders-reader' })).toEqual({
      status: 403,
      body: {
        error: 'access_denied',
        error_description:
          'role "orders-reader" denied: condition StringLike on "kubernetes.io/namespace" did not match; the request carried "billing"',
      },
    });
  });

  it('ok/cel-condition-holds', async () => {
    const result = await exchange(token('ci', 'deployer', 'deployer-7f8'), {
      resource: 'ci-deployer',
    });
    expect(result.status).toBe(200);
  });

  it('fail/cel-condition-false', async () => {
    expect(await exchange(token('ci', 'deployer', 'web-1'), { resource: 'ci-deployer' })).toEqual({
      status: 403,
      body: {
        error: 'access_denied',
        error_description: 'role "ci-deployer" denied: condition Cel[0] evaluated to false',
      },
    });
  });

  it('ok/shadow-policy-disagreement-counted-but-not-enforced', async () => {
    const before = (await app.metrics.shadowDisagreements.get()).values.reduce(
      (sum, v) => sum + v.value,
      0,
    );
    expect((await exchange(token('orders-api', 'api'), { resource: 'shadowed' })).status).toBe(200);
    expect((await exchange(token('ci', 'api'), { resource: 'shadowed' })).status).toBe(200);
    const after = await app.metrics.shadowDisagreements.get();
    expect(after.values.reduce((sum, v) => sum + v.value, 0) - before).toBe(1);
    expect(after.values.find((v) => v.value > 0)?.labels).toEqual({
      role: 'shadowed',
      enforced: 'allow',
      shadow: 'deny',
    });
  });

  it('ok/derived-claims-and-aws-session-tags', async () => {
    const result = await exchange(token('team-a', 'builder', 'builder-1'), {
      audience: 'sts.amazonaws.com',
    });
    expect(result.status).toBe(200);
    const claims = decodeJwt(result.body.access_token as string);
    expect({
      sub: claims.sub,
      aud: claims.aud,
      workload: claims.workload,
      node: claims.node,
      tags: claims['https://aws.amazon.com/tags'],
    }).toEqual({
      sub: 'dev:team-a:builder',
      aud: 'sts.amazonaws.com',
      workload: 'team-a/builder-1',
      node: 'dev-node',
      tags: {
        principal_tags: { cluster: ['dev'], namespace: ['team-a'] },
        transitive_tag_keys: ['namespace'],
      },
    });
  });
});

describe('AWS session tags rendered from token claims', () => {
  const refused = (problem: string) => ({
    status: 400,
    body: {
      error: 'invalid_request',
      error_description: `cannot issue the role's AWS session tags: session tag "pod" ${problem}`,
    },
  });
  const cases = [
    {
      name: 'ok/string-claim-and-absent-claim',
      pod: 'api-1',
      expected: { status: 200, tags: { principal_tags: { pod: ['api-1'] } } },
    },
    {
      name: 'fail/value-over-256-characters',
      pod: 'p'.repeat(257),
      expected: refused('is longer than 256 characters'),
    },
    {
      name: 'fail/characters-aws-refuses',
      pod: 'api,admin',
      expected: refused('has characters AWS does not allow in a tag value'),
    },
  ];
  it.each(cases)('$name', async ({ pod, expected }) => {
    const result = await exchange(token('team-a', 'api', pod), { resource: 'aws-tag-from-claim' });
    if (result.status === 200)
      expect({
        status: 200,
        tags: decodeJwt(result.body.access_token as string)['https://aws.amazon.com/tags'],
      }).toEqual(expected);
    else expect(result).toEqual(expected);
  });
});

describe('template values cannot add fields to the issued subject', () => {
  const cases = [
    {
      name: 'ok/kubernetes-names',
      serviceAccount: 'api',
      expected: { status: 200, sub: 'system:serviceaccount:team-a:api' },
    },
    {
      name: 'fail/colon-in-a-name',
      serviceAccount: 'api:admin',
      expected: {
        status: 400,
        body: {
          error: 'invalid_request',
          error_description:
            'the token\'s value of {{serviceAccount}} cannot be used in the role\'s subject: it contains ":"',
        },
      },
    },
  ];
  it.each(cases)('$name', async ({ serviceAccount, expected }) => {
    const result = await exchange(token('team-a', serviceAccount), {
      resource: 'subject-from-names',
    });
    if (result.status === 200)
      expect({ status: 200, sub: decodeJwt(result.body.access_token as string).sub }).toEqual(
        expected,
      );
    else expect(result).toEqual(expected);
  });
});

describe('policy explain agrees with the live decision', () => {
  async function explain(role: string, tokenFile: string): Promise<string> {
    let out = '';
    const program = new Command('tessera').exitOverride();
    registerPolicyCommands(program, {
      out: (text) => (out += text),
      err: () => undefined,
      exit: () => undefined,
    });
    await program.parseAsync([
      'node',
      'tessera',
      'policy',
      'explain',
      '--role',
      role,
      '--token',
      tokenFile,
      '--config',
      join(root, 'config.yaml'),
      '--json',
    ]);
    return (JSON.parse(out) as { decision: string }).decision;
  }

  it('ok/200-random-claims-role-pairs', async () => {
    const tokenFile = join(root, 'token');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('orders-api', 'orders-sandbox', 'kube-system', 'ci', 'team-x', 'default'),
        fc.constantFrom('api', 'worker', 'deployer', 'default'),
        fc.constantFrom('deployer-1', 'web-2'),
        fc.constantFrom('orders-reader', 'ci-deployer', 'shadowed', 'aws-abac'),
        async (namespace, serviceAccount, pod, role) => {
          const subject = await token(namespace, serviceAccount, pod);
          writeFileSync(tokenFile, subject);
          const live = await exchange(subject, { resource: role });
          expect([200, 403]).toContain(live.status);
          expect(await explain(role, tokenFile)).toBe(live.status === 200 ? 'allow' : 'deny');
        },
      ),
      { numRuns: 200 },
    );
  });
});
