import { describe, expect, it } from 'vitest';
import { createMetrics, silentLogger } from '../../../src/observability/index.js';
import type { TesseraError } from '../../../src/errors.js';
import { selectRole } from '../../../src/sts/select-role.js';
import { denialDescription, templateVars } from '../../../src/trust-policies/index.js';
import { allow, deny, guardrailText, identity, input, roleText, setOf } from './helpers.js';

const guardrail = guardrailText(
  'baseline',
  [deny({ StringEquals: { 'kubernetes.io/namespace': 'kube-system' } }, 'NeverKubeSystem')],
  '30m',
);
const orders = roleText('orders', [
  allow(
    {
      StringEquals: { 'kubernetes.io/namespace': 'prod' },
      StringLike: { 'kubernetes.io/serviceaccount/name': 'orders-*' },
    },
    { Federated: 'prod' },
    'Orders',
  ),
  deny({ StringEquals: { 'kubernetes.io/pod/name': 'debug' } }, 'NoDebugPods'),
]);

describe('denialDescription', () => {
  const set = setOf([orders, guardrail]);
  const role = set.roles.get('orders');
  if (!role) throw new Error('role missing');
  const cases = [
    {
      name: 'fail/first-failing-condition-with-seen-value',
      input: input(identity({ namespace: 'prod', serviceAccount: { name: 'api' } })),
      expected:
        'role "orders" denied: condition StringLike on "kubernetes.io/serviceaccount/name" did not match; the request carried "api"',
    },
    {
      name: 'fail/missing-value',
      input: input(identity({ namespace: undefined, serviceAccount: { name: 'orders-api' } })),
      expected:
        'role "orders" denied: condition StringEquals on "kubernetes.io/namespace" did not match; the request carried no value',
    },
    {
      name: 'fail/explicit-deny-of-role',
      input: input(
        identity({
          namespace: 'prod',
          serviceAccount: { name: 'orders-api' },
          pod: { name: 'debug' },
        }),
      ),
      expected: 'role "orders" denied: explicit Deny statement "NoDebugPods" of the role matched',
    },
    {
      name: 'fail/explicit-deny-of-guardrail',
      input: input(identity({ namespace: 'kube-system' })),
      expected:
        'role "orders" denied: explicit Deny statement "NeverKubeSystem" of guardrail "baseline" matched',
    },
    {
      name: 'fail/principal',
      input: input(identity({ cluster: 'dev', iss: 'https://dev.example.com' })),
      expected: 'role "orders" denied: no Allow statement names the token\'s cluster as Principal',
    },
  ];
  it.each(cases)('$name', ({ input: given, expected }) => {
    const decision = set.decide(role, given);
    expect(decision.decision).toBe('deny');
    const description = denialDescription(role, decision);
    expect(description).toBe(expected);
    // The policy's expected values never leak: "prod" is expected, "orders-*" too.
    expect(description.includes('orders-*')).toBe(false);
  });
});

describe('guardrail lifetime caps and derived claims', () => {
  it('ok/guardrail-caps-lifetimes', () => {
    const text = roleText('r', [allow()], {
      issue: {
        audiences: ['vault'],
        maxLifetime: '2h',
        defaultLifetime: '1h',
        x509: { spiffeId: 'spiffe://x/{{namespace}}', maxTtl: '2h' },
      },
    });
    const role = setOf([text, guardrail]).roles.get('r');
    expect([
      role?.issue.maxLifetime,
      role?.issue.defaultLifetime,
      role?.issue.x509?.maxTtl,
    ]).toEqual([1800, 1800, 1800]);
  });

  it('ok/claims-template-tree-and-aws-session-tags', () => {
    const text = roleText('r', [allow()], {
      issue: {
        audiences: ['sts.amazonaws.com'],
        subject: 'system:serviceaccount:{{namespace}}:{{serviceAccount}}',
        claims: {
          team: 'orders',
          where: '{{cluster}}/{{namespace}}/{{pod}}',
          pod: '{{claims.kubernetes.io.pod.name}}',
          groups: '{{claims.groups}}',
          absent: '{{claims.nothing}}',
          'https://aws.amazon.com/tags': {
            principal_tags: { cluster: '{{cluster}}', namespace: ['{{namespace}}'] },
            transitive_tag_keys: ['cluster'],
          },
        },
      },
    });
    const role = setOf([text]).roles.get('r');
    const vars = templateVars(identity({}, { groups: ['a', 'b'] }));
    expect(role?.issue.subject?.(vars)).toBe('system:serviceaccount:prod:api');
    expect(role?.issue.claims(vars)).toEqual({
      team: 'orders',
      where: 'prod/prod/api-7d9f',
      pod: 'api-7d9f',
      groups: ['a', 'b'],
      'https://aws.amazon.com/tags': {
        principal_tags: { cluster: ['prod'], namespace: ['prod'] },
        transitive_tag_keys: ['cluster'],
      },
    });
  });
});

describe('AWS session tags rendered at issue time', () => {
  const text = roleText('r', [allow()], {
    issue: {
      audiences: ['sts.amazonaws.com'],
      claims: {
        'https://aws.amazon.com/tags': {
          principal_tags: {
            cluster: '{{cluster}}',
            team: ['{{claims.team}}'],
            where: 'ns-{{claims.team}}',
          },
          transitive_tag_keys: ['team', 'cluster'],
        },
      },
    },
  });
  const role = setOf([text]).roles.get('r');
  const tags = (team: unknown) => {
    try {
      return role?.issue.claims(templateVars(identity({}, team === undefined ? {} : { team })))[
        'https://aws.amazon.com/tags'
      ];
    } catch (error) {
      const e = error as TesseraError;
      expect(e.reason).toBe('session_tag_invalid');
      return `${e.code}: ${e.description}`;
    }
  };
  const cases: Array<{ name: string; team: unknown; expected: unknown }> = [
    {
      name: 'ok/string-claim',
      team: 'orders',
      expected: {
        principal_tags: { cluster: ['prod'], team: ['orders'], where: ['ns-orders'] },
        transitive_tag_keys: ['team', 'cluster'],
      },
    },
    {
      name: 'ok/number-claim-is-one-string',
      team: 42,
      expected: {
        principal_tags: { cluster: ['prod'], team: ['42'], where: ['ns-42'] },
        transitive_tag_keys: ['team', 'cluster'],
      },
    },
    {
      name: 'ok/value-of-256-characters',
      team: 'a'.repeat(253),
      expected: {
        principal_tags: {
          cluster: ['prod'],
          team: ['a'.repeat(253)],
          where: [`ns-${'a'.repeat(253)}`],
        },
        transitive_tag_keys: ['team', 'cluster'],
      },
    },
    {
      name: 'fail/templated-value-over-256-characters',
      team: 'a'.repeat(254),
      expected:
        'invalid_request: cannot issue the role\'s AWS session tags: session tag "where" is longer than 256 characters',
    },
    {
      name: 'ok/missing-claim-drops-the-tag-and-its-transitive-key',
      team: undefined,
      expected: {
        principal_tags: { cluster: ['prod'], where: ['ns-'] },
        transitive_tag_keys: ['cluster'],
      },
    },
    {
      name: 'fail/list-claim',
      team: ['a', 'b'],
      expected:
        'invalid_request: cannot issue the role\'s AWS session tags: session tag "team" must render to one string, not a list or an object',
    },
    {
      name: 'fail/object-claim',
      team: { name: 'a' },
      expected:
        'invalid_request: cannot issue the role\'s AWS session tags: session tag "team" must render to one string, not a list or an object',
    },
    {
      name: 'fail/value-over-256-characters',
      team: 'a'.repeat(257),
      expected:
        'invalid_request: cannot issue the role\'s AWS session tags: session tag "team" is longer than 256 characters',
    },
    {
      name: 'fail/characters-aws-refuses',
      team: 'a,b',
      expected:
        'invalid_request: cannot issue the role\'s AWS session tags: session tag "team" has characters AWS does not allow in a tag value',
    },
  ];
  it.each(cases)('$name', ({ team, expected }) => {
    expect(tags(team)).toEqual(expected);
  });
});

describe('template values cannot change the structure of SPIFFE IDs, DNS names and subjects', () => {
  const text = roleText('r', [allow()], {
    issue: {
      audiences: ['vault'],
      subject: 'system:serviceaccount:{{namespace}}:{{claims.app}}',
      x509: {
        spiffeId: 'spiffe://example.org/ns/{{namespace}}/sa/{{claims.app}}',
        dnsNames: ['{{claims.app}}.svc.example.org'],
      },
    },
  });
  const bySub = roleText('s', [allow()], {
    issue: {
      audiences: ['vault'],
      subject: '{{sub}}',
      x509: { spiffeId: 'spiffe://example.org/{{sub}}' },
    },
  });
  const set = setOf([text, bySub]);
  const render = (role: string, field: 'subject' | 'spiffeId' | 'dnsName', app: string) => {
    const issue = set.roles.get(role)?.issue;
    const vars = templateVars(identity({}, { app }));
    try {
      if (field === 'subject') return issue?.subject?.(vars);
      if (field === 'spiffeId') return issue?.x509?.spiffeId(vars);
      return issue?.x509?.dnsNames[0]?.(vars);
    } catch (error) {
      const e = error as TesseraError;
      return `${e.code}: ${e.description}`;
    }
  };
  const refused = (variable: string, field: string, rule: string) =>
    `invalid_request: the token's value of {{${variable}}} cannot be used in the role's ${field}: it contains ${rule}`;
  const segment = 'characters outside [A-Za-z0-9._-]';
  const cases: Array<{
    name: string;
    role?: string;
    field: 'subject' | 'spiffeId' | 'dnsName';
    app: string;
    expected: string;
  }> = [
    {
      name: 'ok/spiffe-id-kubernetes-name',
      field: 'spiffeId',
      app: 'api-v2.x_y',
      expected: 'spiffe://example.org/ns/prod/sa/api-v2.x_y',
    },
    {
      name: 'fail/spiffe-id-slash-adds-segments',
      field: 'spiffeId',
      app: 'admin/ns/x/sa/y',
      expected: refused('claims.app', 'x509.spiffeId', segment),
    },
    {
      name: 'fail/spiffe-id-percent-encoding',
      field: 'spiffeId',
      app: 'a%2Fb',
      expected: refused('claims.app', 'x509.spiffeId', segment),
    },
    {
      name: 'fail/spiffe-id-colon-from-sub',
      role: 's',
      field: 'spiffeId',
      app: 'x',
      expected: refused('sub', 'x509.spiffeId', segment),
    },
    {
      name: 'fail/spiffe-id-long-value-never-echoed',
      field: 'spiffeId',
      app: 'x/'.repeat(500),
      expected: refused('claims.app', 'x509.spiffeId', segment),
    },
    { name: 'ok/dns-name-label', field: 'dnsName', app: 'api', expected: 'api.svc.example.org' },
    {
      name: 'fail/dns-name-wildcard',
      field: 'dnsName',
      app: '*',
      expected: refused('claims.app', 'x509.dnsNames', segment),
    },
    {
      name: 'fail/dns-name-slash',
      field: 'dnsName',
      app: 'evil.example.com/x',
      expected: refused('claims.app', 'x509.dnsNames', segment),
    },
    {
      name: 'ok/subject-kubernetes-name',
      field: 'subject',
      app: 'api',
      expected: 'system:serviceaccount:prod:api',
    },
    {
      name: 'ok/subject-slash-is-no-field',
      field: 'subject',
      app: 'a/b',
      expected: 'system:serviceaccount:prod:a/b',
    },
    {
      name: 'fail/subject-colon-adds-fields',
      field: 'subject',
      app: 'admin:extra',
      expected: refused('claims.app', 'subject', '":"'),
    },
    {
      name: 'ok/subject-sub-keeps-its-colons',
      role: 's',
      field: 'subject',
      app: 'x',
      expected: 'system:serviceaccount:prod:api',
    },
  ];
  it.each(cases)('$name', ({ role, field, app, expected }) => {
    expect(render(role ?? 'r', field, app)).toBe(expected);
  });
});

describe('shadow mode', () => {
  it('ok/disagreement-is-reported-counted-not-enforced', async () => {
    const metrics = createMetrics();
    const text = roleText('r', [allow()], {
      shadowTrustPolicy: {
        Statement: [
          allow(
            { StringEquals: { 'kubernetes.io/namespace': 'ci' } },
            { Federated: 'prod' },
            'OnlyCi',
          ),
        ],
      },
    });
    const set = setOf([text], { logger: silentLogger(), metrics });
    const role = set.roles.get('r');
    if (!role) throw new Error('role missing');
    const decision = set.decide(role, input());
    expect({
      decision: decision.decision,
      shadow: decision.shadow?.decision,
      disagrees: decision.shadow?.disagrees,
    }).toEqual({
      decision: 'allow',
      shadow: 'deny',
      disagrees: true,
    });
    const agreeing = set.decide(role, input(identity({ namespace: 'ci' })));
    expect(agreeing.shadow?.disagrees).toBe(false);
    const counted = await metrics.shadowDisagreements.get();
    expect(counted.values).toEqual([
      { labels: { role: 'r', enforced: 'allow', shadow: 'deny' }, value: 1 },
    ]);
  });
});

describe('guardrails apply to every role a set decides', () => {
  const guarded = setOf([roleText('r', [allow()]), guardrail]);
  const unguarded = setOf([roleText('r', [allow()])]);
  const cases = [
    { name: 'fail/role-of-the-set', role: guarded.roles.get('r'), expected: 'deny' },
    { name: 'fail/role-of-another-set', role: unguarded.roles.get('r'), expected: 'deny' },
  ];
  it.each(cases)('$name', ({ role, expected }) => {
    if (!role) throw new Error('role missing');
    expect(guarded.decide(role, input(identity({ namespace: 'kube-system' }))).decision).toBe(
      expected,
    );
  });
});

describe('selectRole', () => {
  const set = setOf([
    roleText('a', [allow()]),
    roleText('b', [allow()], { issue: { audiences: ['vault', 'other'] } }),
    roleText('c', [allow()], { issue: { audiences: ['only-c'] } }),
  ]);
  const cases: Array<{ name: string; resource?: string; audiences: string[]; expected: string }> = [
    { name: 'ok/by-name', resource: 'a', audiences: [], expected: 'a' },
    { name: 'ok/by-urn', resource: 'urn:tessera:role:b', audiences: [], expected: 'b' },
    { name: 'ok/by-unique-audience', audiences: ['only-c'], expected: 'c' },
    {
      name: 'fail/unknown-role',
      resource: 'zzz',
      audiences: [],
      expected: 'invalid_target: resource names no known role',
    },
    {
      name: 'fail/ambiguous-audience',
      audiences: ['vault'],
      expected:
        'invalid_target: several roles issue for the requested audience; name one with resource',
    },
    {
      name: 'fail/no-role-for-audience',
      audiences: ['nobody'],
      expected: 'invalid_target: no role issues for the requested audience',
    },
    {
      name: 'fail/nothing-given',
      audiences: [],
      expected: 'invalid_target: resource or audience is required to select a role',
    },
  ];
  it.each(cases)('$name', ({ resource, audiences, expected }) => {
    let outcome: string;
    try {
      outcome = selectRole(set, resource, audiences).name;
    } catch (error) {
      const e = error as TesseraError;
      outcome = `${e.code}: ${e.description}`;
    }
    expect(outcome).toBe(expected);
  });
});
