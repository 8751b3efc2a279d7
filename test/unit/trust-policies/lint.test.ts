import { Command } from 'commander';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClusterConfig } from '../../../src/config/index.js';
import { registerPolicyCommands } from '../../../src/cli/policy.js';
import { formatProblem, lintDirectory, loadPolicySet } from '../../../src/trust-policies/index.js';

const BASE = 'test/unit/trust-policies/fixtures/lint';
const prod: ClusterConfig = {
  name: 'prod',
  issuer: 'https://oidc.prod.example.com',
  verify: 'jwks',
  allowInsecure: false,
};
const alpha: ClusterConfig = {
  name: 'alpha',
  issuer: 'https://issuer.example.com/tenants/alpha',
  verify: 'jwks',
  allowInsecure: false,
};

/** One fixture directory per problem; each line is `file:line:col: message` with the fixture dir stripped. */
const cases: Array<{ name: string; clusters?: ClusterConfig[]; expected: string[] }> = [
  {
    name: 'unknown-operator',
    expected: [
      'role.yaml:10:9: unknown condition operator "StringEqualz" (did you mean StringEquals?)',
    ],
  },
  {
    name: 'unknown-qualifier',
    expected: [
      'role.yaml:10:9: unknown condition qualifier "ForSomeValue:" (expected ForAnyValue: or ForAllValues:)',
    ],
  },
  {
    name: 'unknown-key',
    expected: ['role.yaml:11:11: unknown condition key "kubernetes.io/namespaces"'],
  },
  {
    name: 'arn-condition-key',
    expected: [
      'role.yaml:11:11: condition key "arn:aws:iam::111122223333:oidc-provider/oidc.prod.example.com:sub" looks like an ARN: IAM condition keys use the issuer host+path, not the provider ARN; use "oidc.prod.example.com:sub"',
    ],
  },
  {
    name: 'wildcard-in-string-equals',
    expected: [
      'role.yaml:11:36: warning: StringEquals compares "prod-*" literally: * and ? are wildcards only in StringLike',
    ],
  },
  {
    name: 'unknown-principal',
    clusters: [prod],
    expected: ['role.yaml:7:38: Principal "staging" names no configured cluster (known: prod)'],
  },
  {
    name: 'principal-issuer-path-case',
    clusters: [alpha],
    expected: [
      'role.yaml:10:13: Principal "arn:aws:iam::111122223333:oidc-provider/issuer.example.com/tenants/ALPHA" names no configured cluster (known: alpha)',
      'role.yaml:12:13: Principal "http://issuer.example.com/tenants/alpha" names no configured cluster (known: alpha)',
    ],
  },
  {
    name: 'duplicate-role',
    expected: [`b.yaml:4:9: role "orders" is also defined in ${BASE}/duplicate-role/a.yaml`],
  },
  {
    name: 'overlapping-audiences',
    expected: [
      `b.yaml:9:7: warning: audience "https://vault.example.com" is also issued by role "orders-reader" (${BASE}/overlapping-audiences/a.yaml): a request for it without resource is ambiguous`,
    ],
  },
  {
    name: 'unknown-template-variable',
    expected: [
      'role.yaml:8:12: unknown template variable "{{serviceaccount}}" (known: {{namespace}}, {{serviceAccount}}, {{pod}}, {{cluster}}, {{sub}}, {{claims.<path>}}, {{pod.label.<name>}}, {{pod.annotation.<name>}}, {{pod.owner}}, {{node.label.<name>}})',
    ],
  },
  {
    name: 'lifetime-above-cap',
    expected: ['role.yaml:8:16: maxLifetime 1d is above the hard cap of 12h'],
  },
  {
    name: 'fractional-lifetime',
    expected: [
      'role.yaml:8:16: issue.maxLifetime: must be a whole number of seconds (such as 90s, 15m or 1h30m)',
    ],
  },
  {
    name: 'default-above-max',
    expected: ['role.yaml:6:66: defaultLifetime 1h is above maxLifetime 30m'],
  },
  {
    name: 'guardrail-makes-role-unusable',
    expected: [
      'role.yaml:3:19: role "dns-admin" can never be obtained: guardrail "baseline" statement "NeverKubeSystem" denies everything its Allow statements admit',
    ],
  },
  {
    name: 'session-tag-limits',
    expected: [
      'role.yaml:11:9: AWS allows at most 50 session tags; principal_tags has 53',
      'role.yaml:62:9: session tag key "kkkkkkkkkkkkkkkkkkkk…" is longer than 128 characters',
      'role.yaml:63:15: session tag "long" value is longer than 256 characters',
      'role.yaml:64:35: transitive tag key "nope" is not in principal_tags',
    ],
  },
  {
    name: 'reserved-claims',
    expected: [
      'role.yaml:10:5: claim "sub" is set by Tessera; a role cannot set it (use issue.subject)',
      'role.yaml:11:5: claim "scope" is set by Tessera; a role cannot set it',
      'role.yaml:12:5: claim "act" is set by Tessera; a role cannot set it',
      'role.yaml:13:5: claim "kubernetes.io" is set by Tessera; a role cannot set it',
      'role.yaml:14:5: claim "tessera" is set by Tessera; a role cannot set it',
      'role.yaml:15:5: claim "cnf" is set by Tessera; a role cannot set it',
      'role.yaml:16:5: claim "azp" is set by Tessera; a role cannot set it',
      'role.yaml:17:5: claim "iss" is set by Tessera; a role cannot set it',
      'role.yaml:18:5: claim "aud" is set by Tessera; a role cannot set it (use issue.audiences)',
      'role.yaml:19:5: claim "exp" is set by Tessera; a role cannot set it (use issue.maxLifetime)',
      'role.yaml:20:5: claim "nbf" is set by Tessera; a role cannot set it',
      'role.yaml:21:5: claim "iat" is set by Tessera; a role cannot set it',
      'role.yaml:22:5: claim "jti" is set by Tessera; a role cannot set it',
    ],
  },
  {
    name: 'cloud-subject-limits',
    expected: [
      'aws-open.yaml:8:37: warning: the subject can be up to 285 characters but AWS\'s SubjectFromWebIdentityToken allows at most 255 characters for audience "sts.amazonaws.com": such exchanges will be refused',
      'gcp-claims.yaml:9:12: warning: the subject can be of any length but GCP\'s google.subject allows at most 127 bytes for audience "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/tessera": such exchanges will be refused',
    ],
  },
  {
    name: 'azure-lifetime',
    expected: [
      'azure-short.yaml:10:20: warning: @azure/identity re-reads the token file only every 5 minutes: a role for "api://AzureADTokenExchange" needs a lifetime of at least 15m, not 10m',
    ],
  },
  { name: 'cel-type-error', expected: ['role.yaml:10:14: CEL: no such overload: string + int'] },
  { name: 'unknown-field', expected: ['role.yaml:6:31: issue.lifetime: unknown field'] },
  {
    name: 'yaml-syntax',
    expected: [
      'role.yaml:4:1: Flow map in block collection must be sufficiently indented and end with a }',
    ],
  },
];

describe('policy lint', () => {
  it.each(cases)('fail/$name', ({ name, clusters, expected }) => {
    const dir = join(BASE, name);
    const result = lintDirectory(dir, clusters ? { clusters } : {});
    expect(result.problems.map((problem) => formatProblem(problem).replace(`${dir}/`, ''))).toEqual(
      expected,
    );
  });

  it('ok/cloud-subjects-pinned-by-the-trust-policy-fit', () => {
    expect(lintDirectory(join(BASE, 'cloud-subject-pinned')).problems.map(formatProblem)).toEqual(
      [],
    );
  });

  it('ok/principals-unchecked-without-clusters', () => {
    expect(lintDirectory(join(BASE, 'unknown-principal')).problems).toEqual([]);
  });

  it('ok/shipped-policies-lint-clean', () => {
    expect(lintDirectory('policies').problems.map(formatProblem)).toEqual([]);
  });

  it('ok/shipped-policies-lint-clean-against-their-clusters', () => {
    const clusters: ClusterConfig[] = [
      {
        name: 'dev',
        issuer: 'https://dev-cluster.tessera.local',
        verify: 'jwks',
        allowInsecure: false,
      },
      {
        name: 'prod',
        issuer: 'https://oidc.eks.eu-west-1.amazonaws.com/id/5C3B0E1D9A7F4E26B8D4C1A0F3E2D1C0',
        verify: 'jwks',
        allowInsecure: false,
      },
    ];
    expect(
      lintDirectory('policies', { clusters, audience: 'sts.example.com' }).problems.map(
        formatProblem,
      ),
    ).toEqual([]);
  });
});

describe('tessera policy lint (command)', () => {
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    let code = -1;
    const program = new Command('tessera').exitOverride();
    registerPolicyCommands(program, {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      exit: (c) => (code = c),
    });
    await program.parseAsync(['node', 'tessera', 'policy', 'lint', ...args]);
    return { out: out.join(''), err: err.join(''), code };
  };

  const version = `policyVersion: ${loadPolicySet('policies').version}\n`;

  it('ok/exit-0-when-clean-and-prints-the-policy-version', async () => {
    expect(await run(['policies'])).toEqual({ out: version, err: '', code: 0 });
  });

  it('fail/exit-1-with-file-line-col', async () => {
    const dir = join(BASE, 'unknown-operator');
    expect(await run([dir])).toEqual({
      out: `${dir}/role.yaml:10:9: unknown condition operator "StringEqualz" (did you mean StringEquals?)\n`,
      err: '1 error(s), 0 warning(s) in 1 file(s)\n',
      code: 1,
    });
  });

  const warningOnly = join(BASE, 'wildcard-in-string-equals');
  const warningVersion = `policyVersion: ${loadPolicySet(warningOnly).version}\n`;
  const warning = `${warningOnly}/role.yaml:11:36: warning: StringEquals compares "prod-*" literally: * and ? are wildcards only in StringLike\n`;
  const exits: Array<{
    name: string;
    args: string[];
    expected: { out: string; err: string; code: number };
  }> = [
    {
      name: 'ok/warnings-only-exit-0',
      args: [warningOnly],
      expected: {
        out: warning + warningVersion,
        err: '0 error(s), 1 warning(s) in 1 file(s)\n',
        code: 0,
      },
    },
    {
      name: 'fail/warnings-with-strict-exit-1',
      args: ['--strict', warningOnly],
      expected: {
        out: warning + warningVersion,
        err: '0 error(s), 1 warning(s) in 1 file(s)\n',
        code: 1,
      },
    },
    {
      name: 'ok/clean-with-strict-exit-0',
      args: ['--strict', 'policies'],
      expected: { out: version, err: '', code: 0 },
    },
  ];
  it.each(exits)('$name', async ({ args, expected }) => {
    expect(await run(args)).toEqual(expected);
  });

  it('fail/exit-2-when-directory-missing', async () => {
    const result = await run(['does-not-exist']);
    expect(result.code).toBe(2);
    expect(result.err).toBe('policy lint: cannot read does-not-exist: ENOENT\n');
  });
});
