import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { registerPolicyCommands } from '../../src/cli/policy.js';
import { allow, identity, input, roleText, setOf } from '../unit/trust-policies/helpers.js';

/**
 * IRSA forms (condition keys `<host[:port]/path>:sub|aud|iss`, host+path Principals, OIDC-provider
 * ARNs) name an issuer without scheme, trailing slash, host case or default port. Self-managed
 * clusters publish issuers with a port; and two clusters that are one issuer to those forms
 * would both obtain a role written for one of them, so start-up refuses such a pair.
 */

const decide = (issuer: string, statement: unknown) => {
  const set = setOf([roleText('r', [statement])]);
  const role = set.roles.get('r');
  if (!role) throw new Error('role missing');
  const id = identity({ iss: issuer });
  return set.decide(role, input(id)).decision;
};

const subIs = (key: string) =>
  allow({ StringEquals: { [key]: 'system:serviceaccount:prod:api' } }, '*');

describe('issuer URLs with a port in IRSA form', () => {
  const cases: Array<{
    name: string;
    issuer: string;
    statement: unknown;
    expected: 'allow' | 'deny';
  }> = [
    {
      name: 'ok/condition-key-with-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: subIs('api.k8s.internal:6443:sub'),
      expected: 'allow',
    },
    {
      name: 'ok/condition-key-with-port-and-path',
      issuer: 'https://api.k8s.internal:6443/tenants/a',
      statement: subIs('api.k8s.internal:6443/tenants/a:sub'),
      expected: 'allow',
    },
    {
      name: 'ok/condition-key-host-case',
      issuer: 'https://api.k8s.internal:6443',
      statement: subIs('API.k8s.internal:6443:sub'),
      expected: 'allow',
    },
    {
      name: 'ok/aud-key-with-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: allow({ StringEquals: { 'api.k8s.internal:6443:aud': 'sts.example.com' } }, '*'),
      expected: 'allow',
    },
    {
      name: 'ok/iss-key-with-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: allow(
        { StringEquals: { 'api.k8s.internal:6443:iss': 'https://api.k8s.internal:6443' } },
        '*',
      ),
      expected: 'allow',
    },
    {
      name: 'fail/condition-key-other-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: subIs('api.k8s.internal:7443:sub'),
      expected: 'deny',
    },
    {
      name: 'fail/condition-key-without-the-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: subIs('api.k8s.internal:sub'),
      expected: 'deny',
    },
    {
      name: 'ok/default-port-in-key-dropped',
      issuer: 'https://oidc.example.com/p',
      statement: subIs('oidc.example.com:443/p:sub'),
      expected: 'allow',
    },
    {
      name: 'ok/default-port-in-issuer-dropped',
      issuer: 'https://oidc.example.com:443/p',
      statement: subIs('oidc.example.com/p:sub'),
      expected: 'allow',
    },
    {
      name: 'ok/principal-host-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: allow(undefined, { Federated: 'api.k8s.internal:6443' }),
      expected: 'allow',
    },
    {
      name: 'ok/principal-arn-with-port',
      issuer: 'https://api.k8s.internal:6443/x',
      statement: allow(undefined, {
        Federated: 'arn:aws:iam::111122223333:oidc-provider/api.k8s.internal:6443/x',
      }),
      expected: 'allow',
    },
    {
      name: 'ok/principal-default-port-dropped',
      issuer: 'https://oidc.example.com/p',
      statement: allow(undefined, { Federated: 'oidc.example.com:443/p' }),
      expected: 'allow',
    },
    {
      name: 'fail/principal-other-port',
      issuer: 'https://api.k8s.internal:6443',
      statement: allow(undefined, { Federated: 'api.k8s.internal:443' }),
      expected: 'deny',
    },
  ];
  it.each(cases)('$name', ({ issuer, statement, expected }) => {
    expect(decide(issuer, statement)).toBe(expected);
  });
});

const minimal = { issuer: 'https://sts.example.com', audience: 'sts.example.com' };
const problemsOf = (input: unknown): string[] => {
  try {
    parseConfig(input);
    return [];
  } catch (error) {
    return (error as { problems: string[] }).problems;
  }
};

describe('issuers that are one issuer to IRSA forms', () => {
  const sameIssuer = (
    index: number,
    name: string,
    issuer: string,
    firstName: string,
    firstIssuer: string,
    firstLabel: string,
    hostPath: string,
  ) =>
    `clusters[${index}].issuer: cluster "${name}" (${issuer}) and cluster "${firstName}" (${firstIssuer}, ${firstLabel}) are the same issuer to IRSA ` +
    `condition keys and principals (${hostPath}): issuers must differ in more than scheme, trailing slash, host case or default port`;
  const pair = (second: string, options: { allowInsecure?: boolean } = {}) => ({
    ...minimal,
    clusters: [
      { name: 'prod', issuer: 'https://x.example.com/prod' },
      { name: 'other', issuer: second, ...options },
    ],
  });
  const cases: Array<{ name: string; config: unknown; expected: string[] }> = [
    {
      name: 'fail/issuer-pair-differs-only-by-trailing-slash',
      config: pair('https://x.example.com/prod/'),
      expected: [
        sameIssuer(
          1,
          'other',
          'https://x.example.com/prod/',
          'prod',
          'https://x.example.com/prod',
          'clusters[0]',
          'x.example.com/prod',
        ),
      ],
    },
    {
      name: 'fail/issuer-pair-differs-only-by-scheme',
      config: pair('http://x.example.com/prod', { allowInsecure: true }),
      expected: [
        sameIssuer(
          1,
          'other',
          'http://x.example.com/prod',
          'prod',
          'https://x.example.com/prod',
          'clusters[0]',
          'x.example.com/prod',
        ),
      ],
    },
    {
      name: 'fail/issuer-pair-differs-only-by-host-case',
      config: pair('https://X.Example.com/prod'),
      expected: [
        sameIssuer(
          1,
          'other',
          'https://X.Example.com/prod',
          'prod',
          'https://x.example.com/prod',
          'clusters[0]',
          'x.example.com/prod',
        ),
      ],
    },
    {
      name: 'fail/issuer-pair-differs-only-by-default-port',
      config: pair('https://x.example.com:443/prod'),
      expected: [
        sameIssuer(
          1,
          'other',
          'https://x.example.com:443/prod',
          'prod',
          'https://x.example.com/prod',
          'clusters[0]',
          'x.example.com/prod',
        ),
      ],
    },
    {
      name: 'fail/issuer-pair-with-the-dev-cluster',
      config: {
        ...minimal,
        devCluster: {},
        clusters: [{ name: 'prod', issuer: 'https://dev-cluster.tessera.local/' }],
      },
      expected: [
        sameIssuer(
          0,
          'prod',
          'https://dev-cluster.tessera.local/',
          'dev',
          'https://dev-cluster.tessera.local',
          'devCluster',
          'dev-cluster.tessera.local',
        ),
      ],
    },
    {
      name: 'ok/issuer-pair-differs-in-path-case',
      config: pair('https://x.example.com/PROD'),
      expected: [],
    },
    {
      name: 'ok/issuer-pair-differs-in-port',
      config: pair('https://x.example.com:8443/prod'),
      expected: [],
    },
  ];
  it.each(cases)('$name', ({ config, expected }) => {
    expect(problemsOf(config)).toEqual(expected);
  });

  describe('policy lint --config says the same', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-issuer-pair-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('fail/issuer-pair-in-lint-config', async () => {
      const config = join(dir, 'tessera.yaml');
      writeFileSync(
        config,
        'issuer: https://sts.example.com\naudience: sts.example.com\npolicies: ./policies\nclusters:\n  - name: prod\n    issuer: https://x.example.com/prod\n  - name: copy\n    issuer: https://x.example.com/prod/\n',
      );
      const out: string[] = [];
      const err: string[] = [];
      let code = -1;
      const program = new Command('tessera').exitOverride();
      registerPolicyCommands(program, {
        out: (text) => out.push(text),
        err: (text) => err.push(text),
        exit: (value) => (code = value),
      });
      await program.parseAsync([
        'node',
        'tessera',
        'policy',
        'lint',
        'policies',
        '--config',
        config,
      ]);
      expect(code).toBe(1);
      expect(err.join('')).toContain(
        'cluster "copy" (https://x.example.com/prod/) and cluster "prod" (https://x.example.com/prod, clusters[0]) are the same issuer',
      );
    });
  });
});
