import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterConfig } from '../../src/config/index.js';
import { registerPolicyCommands } from '../../src/cli/policy.js';
import { formatProblem, lintDirectory } from '../../src/trust-policies/index.js';

/**
 * A trust policy pasted from EKS checks `<issuer>:aud` = `sts.amazonaws.com`, the audience of the
 * pod's IRSA token. The token a pod presents to Tessera carries an audience the cluster accepts
 * (never sts.amazonaws.com, see docs/policies.md), so such a role can never allow: `policy lint
 * --config` says so, at the condition.
 */

const EKS = 'https://oidc.eks.eu-west-1.amazonaws.com/id/ABC';
const KEY = 'oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud';
const eks: ClusterConfig = { name: 'eks', issuer: EKS, verify: 'jwks', allowInsecure: false };
const root = mkdtempSync(join(tmpdir(), 'tessera-irsa-aud-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function policyDir(name: string, statements: unknown[]): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'role.json'),
    JSON.stringify(
      {
        apiVersion: 'tessera.dev/v1',
        kind: 'Role',
        metadata: { name: 'reports' },
        trustPolicy: { Version: '2012-10-17', Statement: statements },
        issue: { audiences: ['sts.amazonaws.com'] },
      },
      null,
      2,
    ),
  );
  return dir;
}

/** `line:col` of the first `"<KEY>"` in the file: where the problem must point. */
function keyPosition(dir: string): string {
  const lines = readFileSync(join(dir, 'role.json'), 'utf8').split('\n');
  const line = lines.findIndex((text) => text.includes(`"${KEY}"`));
  return `${line + 1}:${(lines[line] as string).indexOf(`"${KEY}"`) + 1}`;
}

const statement = (effect: 'Allow' | 'Deny', condition: Record<string, unknown>) => ({
  Effect: effect,
  Principal: {
    Federated: `arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC`,
  },
  Action: 'sts:AssumeRoleWithWebIdentity',
  Condition: condition,
});

const flagged = (expected: string, accepted: string) =>
  `role.json:POSITION: condition "${KEY}" expects ${expected}, but cluster "eks" accepts only subject tokens for ${accepted}, so no token it accepts ` +
  `can match: check for the audience pods request for Tessera (${accepted.split(', ')[0]}) and issue ${expected} through issue.audiences`;

describe('policy lint --config: IRSA :aud conditions no accepted audience can satisfy', () => {
  const cases: Array<{
    name: string;
    statements: unknown[];
    clusters?: ClusterConfig[];
    audience?: string;
    expected: string[];
  }> = [
    {
      name: 'fail/pasted-eks-policy-checks-sts-amazonaws-com',
      statements: [statement('Allow', { StringEquals: { [KEY]: 'sts.amazonaws.com' } })],
      audience: 'sts.example.com',
      expected: [flagged('"sts.amazonaws.com"', '"sts.example.com"')],
    },
    {
      name: 'fail/cluster-audiences-replace-the-broker-audience',
      statements: [statement('Allow', { StringEquals: { [KEY]: 'sts.example.com' } })],
      clusters: [{ ...eks, audiences: ['tessera-eks', 'tessera'] }],
      audience: 'sts.example.com',
      expected: [flagged('"sts.example.com"', '"tessera-eks", "tessera"')],
    },
    {
      name: 'fail/string-like-matching-no-accepted-audience',
      statements: [statement('Allow', { StringLike: { [KEY]: 'sts.*.com' } })],
      audience: 'tessera',
      expected: [flagged('"sts.*.com"', '"tessera"')],
    },
    {
      name: 'fail/for-any-value-qualifier',
      statements: [
        statement('Allow', { 'ForAnyValue:StringEquals': { [KEY]: ['sts.amazonaws.com'] } }),
      ],
      audience: 'tessera',
      expected: [flagged('"sts.amazonaws.com"', '"tessera"')],
    },
    {
      name: 'ok/checks-the-accepted-audience',
      statements: [statement('Allow', { StringEquals: { [KEY]: 'sts.example.com' } })],
      audience: 'sts.example.com',
      expected: [],
    },
    {
      name: 'ok/one-of-several-values-accepted',
      statements: [
        statement('Allow', { StringEquals: { [KEY]: ['sts.amazonaws.com', 'tessera'] } }),
      ],
      audience: 'tessera',
      expected: [],
    },
    {
      name: 'ok/string-like-matching-an-accepted-audience',
      statements: [statement('Allow', { StringLike: { [KEY]: 'sts.*' } })],
      audience: 'sts.example.com',
      expected: [],
    },
    {
      name: 'ok/deny-on-a-foreign-audience-is-a-guard',
      statements: [
        statement('Allow', {}),
        statement('Deny', { StringEquals: { [KEY]: 'sts.amazonaws.com' } }),
      ],
      audience: 'tessera',
      expected: [],
    },
    {
      name: 'ok/negated-operator',
      statements: [statement('Allow', { StringNotEquals: { [KEY]: 'sts.amazonaws.com' } })],
      audience: 'tessera',
      expected: [],
    },
    {
      name: 'ok/key-of-an-unconfigured-issuer',
      statements: [statement('Allow', { StringEquals: { 'other.example.com:aud': 'x' } })],
      audience: 'tessera',
      expected: [],
    },
  ];
  it.each(cases)('$name', ({ name, statements, clusters, audience, expected }) => {
    const dir = policyDir(name.replace('/', '-'), statements);
    const result = lintDirectory(dir, {
      clusters: clusters ?? [eks],
      ...(audience ? { audience } : {}),
    });
    const aud = result.problems.filter((problem) => problem.message.includes(':aud"'));
    expect(aud.map((problem) => formatProblem(problem).replace(`${dir}/`, ''))).toEqual(
      expected.map((line) => line.replace('POSITION', keyPosition(dir))),
    );
  });

  it('fail/dev-cluster-counts-in-the-command', async () => {
    const dir = policyDir('dev-cluster', [
      {
        Effect: 'Allow',
        Principal: { Federated: 'dev' },
        Action: 'sts:TokenExchange',
        Condition: { StringEquals: { 'dev-cluster.tessera.local:aud': 'sts.amazonaws.com' } },
      },
    ]);
    const config = join(root, 'tessera.json');
    writeFileSync(
      config,
      JSON.stringify({
        issuer: 'https://sts.example.com',
        audience: 'tessera',
        devCluster: { keyDir: join(root, 'dev') },
        policies: dir,
      }),
    );
    const out: string[] = [];
    let code = -1;
    const program = new Command('tessera').exitOverride();
    registerPolicyCommands(program, {
      out: (text) => out.push(text),
      err: () => undefined,
      exit: (value) => (code = value),
    });
    await program.parseAsync(['node', 'tessera', 'policy', 'lint', '--config', config]);
    expect(code).toBe(1);
    expect(out.join('')).toContain(
      'condition "dev-cluster.tessera.local:aud" expects "sts.amazonaws.com", but cluster "dev" accepts only subject tokens for "tessera"',
    );
  });
});
