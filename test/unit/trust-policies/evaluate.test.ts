import { describe, expect, it } from 'vitest';
import type { EvaluationInput } from '../../../src/trust-policies/types.js';
import {
  allow,
  deny,
  guardrailText,
  HOST_PATH,
  identity,
  input,
  ISSUER,
  NOW,
  roleText,
  setOf,
} from './helpers.js';

interface Case {
  name: string;
  statements: unknown[];
  guardrails?: unknown[];
  input?: EvaluationInput;
  decision: 'allow' | 'deny';
  decidedBy?: string;
}

const multiAud = input(identity({ aud: ['sts.example.com', 'vault'] }));
const noAud = input(identity({ aud: [] }));
const noNamespace = input(identity({ namespace: undefined }));
const withGroups = (groups: unknown) => input(identity({}, { groups }));
const tenant = input(
  identity({ cluster: 'alpha', iss: 'https://issuer.example.com/tenants/alpha' }),
);

const cases: Case[] = [
  // StringEquals / NotEquals / IgnoreCase
  {
    name: 'ok/string-equals',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': 'prod' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-equals-other-value',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': 'dev' } })],
    decision: 'deny',
  },
  {
    name: 'ok/string-equals-values-or',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': ['dev', 'prod'] } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-equals-is-case-sensitive',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': 'PROD' } })],
    decision: 'deny',
  },
  {
    name: 'fail/string-equals-star-is-literal',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': '*' } })],
    decision: 'deny',
  },
  {
    name: 'ok/string-equals-ignore-case',
    statements: [allow({ StringEqualsIgnoreCase: { 'kubernetes.io/namespace': 'PROD' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/string-not-equals',
    statements: [allow({ StringNotEquals: { 'kubernetes.io/namespace': 'kube-system' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-not-equals-several-values-one-hits',
    statements: [
      allow({ StringNotEquals: { 'kubernetes.io/namespace': ['kube-system', 'prod'] } }),
    ],
    decision: 'deny',
  },
  {
    name: 'ok/string-not-equals-several-values-none-hit',
    statements: [
      allow({ StringNotEquals: { 'kubernetes.io/namespace': ['kube-system', 'default'] } }),
    ],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-not-equals-ignore-case',
    statements: [allow({ StringNotEqualsIgnoreCase: { 'kubernetes.io/namespace': 'PrOd' } })],
    decision: 'deny',
  },
  {
    name: 'ok/string-not-equals-missing-key',
    statements: [allow({ StringNotEquals: { 'kubernetes.io/namespace': 'kube-system' } })],
    input: noNamespace,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-equals-missing-key',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': 'prod' } })],
    input: noNamespace,
    decision: 'deny',
  },
  // StringLike
  {
    name: 'ok/string-like-star',
    statements: [allow({ StringLike: { 'kubernetes.io/namespace': 'pr*' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/string-like-question-mark',
    statements: [allow({ StringLike: { 'kubernetes.io/namespace': 'pro?' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-like-question-is-one-char',
    statements: [allow({ StringLike: { 'kubernetes.io/namespace': 'pr?' } })],
    decision: 'deny',
  },
  {
    name: 'ok/string-like-star-crosses-colons',
    statements: [allow({ StringLike: { [`${HOST_PATH}:sub`]: 'system:serviceaccount:*' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/string-like-literal-escape',
    statements: [allow({ StringLike: { 'kubernetes.io/namespace': 'pro${*}' } })],
    decision: 'deny',
  },
  {
    name: 'fail/string-not-like',
    statements: [allow({ StringNotLike: { 'kubernetes.io/namespace': ['kube-*', 'pr*'] } })],
    decision: 'deny',
  },
  {
    name: 'ok/string-not-like-missing-key',
    statements: [allow({ StringNotLike: { 'kubernetes.io/namespace': 'kube-*' } })],
    input: noNamespace,
    decision: 'allow',
    decidedBy: 'A',
  },
  // IfExists
  {
    name: 'ok/if-exists-missing-key',
    statements: [allow({ StringEqualsIfExists: { 'kubernetes.io/namespace': 'dev' } })],
    input: noNamespace,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/if-exists-present-key-mismatch',
    statements: [allow({ StringEqualsIfExists: { 'kubernetes.io/namespace': 'dev' } })],
    decision: 'deny',
  },
  // Null
  {
    name: 'ok/null-true-missing',
    statements: [allow({ Null: { 'token:groups': 'true' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/null-true-present',
    statements: [allow({ Null: { 'kubernetes.io/pod/name': 'true' } })],
    decision: 'deny',
  },
  {
    name: 'ok/null-false-present',
    statements: [allow({ Null: { 'kubernetes.io/pod/name': false } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  // Bool, Numeric, Date
  {
    name: 'ok/bool',
    statements: [allow({ Bool: { 'token:email_verified': 'true' } })],
    input: input(identity({}, { email_verified: true })),
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/bool-string-false',
    statements: [allow({ Bool: { 'token:email_verified': 'true' } })],
    input: input(identity({}, { email_verified: 'false' })),
    decision: 'deny',
  },
  {
    name: 'ok/numeric-less-than',
    statements: [allow({ NumericLessThan: { 'token:level': 5 } })],
    input: input(identity({}, { level: 3 })),
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/numeric-greater-than-equals',
    statements: [allow({ NumericGreaterThanEquals: { 'token:level': '5' } })],
    input: input(identity({}, { level: 3 })),
    decision: 'deny',
  },
  {
    name: 'fail/numeric-not-a-number',
    statements: [allow({ NumericEquals: { 'token:level': 3 } })],
    input: input(identity({}, { level: 'three' })),
    decision: 'deny',
  },
  {
    name: 'ok/numeric-not-equals',
    statements: [allow({ NumericNotEquals: { 'token:level': [1, 2] } })],
    input: input(identity({}, { level: 3 })),
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/date-greater-than-iat-epoch',
    statements: [allow({ DateGreaterThan: { 'token:iat': '2023-12-31T00:00:00Z' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/date-less-than-request-time',
    statements: [allow({ DateLessThan: { 'request:time': '2023-06-01T00:00:00Z' } })],
    decision: 'deny',
  },
  {
    name: 'ok/date-less-than-equals-epoch-value',
    statements: [allow({ DateLessThanEquals: { 'request:time': String(NOW) } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  // ForAnyValue / ForAllValues
  {
    name: 'ok/for-any-value-aud',
    statements: [allow({ 'ForAnyValue:StringEquals': { [`${HOST_PATH}:aud`]: 'vault' } })],
    input: multiAud,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/for-any-value-empty',
    statements: [allow({ 'ForAnyValue:StringEquals': { [`${HOST_PATH}:aud`]: 'vault' } })],
    input: noAud,
    decision: 'deny',
  },
  {
    name: 'fail/for-any-value-missing',
    statements: [allow({ 'ForAnyValue:StringLike': { 'token:groups': '*' } })],
    decision: 'deny',
  },
  {
    name: 'ok/for-all-values-subset',
    statements: [
      allow({
        'ForAllValues:StringEquals': { [`${HOST_PATH}:aud`]: ['vault', 'sts.example.com', 'x'] },
      }),
    ],
    input: multiAud,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/for-all-values-not-subset',
    statements: [allow({ 'ForAllValues:StringEquals': { [`${HOST_PATH}:aud`]: 'vault' } })],
    input: multiAud,
    decision: 'deny',
  },
  {
    name: 'ok/for-all-values-empty-is-true',
    statements: [allow({ 'ForAllValues:StringEquals': { [`${HOST_PATH}:aud`]: 'vault' } })],
    input: noAud,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/for-all-values-missing-is-true',
    statements: [allow({ 'ForAllValues:StringLike': { 'token:groups': 'team-*' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/for-any-value-not-equals',
    statements: [allow({ 'ForAnyValue:StringNotEquals': { 'token:groups': 'admins' } })],
    input: withGroups(['admins', 'dev']),
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/for-all-values-not-equals',
    statements: [allow({ 'ForAllValues:StringNotEquals': { 'token:groups': 'admins' } })],
    input: withGroups(['admins', 'dev']),
    decision: 'deny',
  },
  {
    name: 'ok/unqualified-multivalued-any-matches',
    statements: [allow({ StringEquals: { [`${HOST_PATH}:aud`]: 'vault' } })],
    input: multiAud,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/unqualified-negated-multivalued-one-hits',
    statements: [allow({ StringNotEquals: { [`${HOST_PATH}:aud`]: 'vault' } })],
    input: multiAud,
    decision: 'deny',
  },
  // Operators AND, keys AND
  {
    name: 'fail/keys-and',
    statements: [
      allow({
        StringEquals: {
          'kubernetes.io/namespace': 'prod',
          'kubernetes.io/serviceaccount/name': 'worker',
        },
      }),
    ],
    decision: 'deny',
  },
  {
    name: 'fail/operators-and',
    statements: [
      allow({
        StringEquals: { 'kubernetes.io/namespace': 'prod' },
        StringLike: { 'kubernetes.io/pod/name': 'web-*' },
      }),
    ],
    decision: 'deny',
  },
  {
    name: 'ok/all-keys-of-all-operators',
    statements: [
      allow({
        StringEquals: { 'kubernetes.io/namespace': 'prod', 'cluster:name': 'prod' },
        StringLike: { 'kubernetes.io/pod/name': 'api-*', 'kubernetes.io/node/name': 'node-?' },
        'ForAnyValue:StringEquals': { 'request:audience': 'vault' },
      }),
    ],
    decision: 'allow',
    decidedBy: 'A',
  },
  // Explicit deny, no match
  {
    name: 'fail/explicit-deny-beats-allow',
    statements: [allow(), deny({ StringEquals: { 'kubernetes.io/namespace': 'prod' } })],
    decision: 'deny',
    decidedBy: 'D',
  },
  {
    name: 'ok/deny-not-matching',
    statements: [allow(), deny({ StringEquals: { 'kubernetes.io/namespace': 'kube-system' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/no-statement-matches',
    statements: [
      allow({ StringEquals: { 'kubernetes.io/namespace': 'x' } }, undefined, 'A1'),
      allow({ StringEquals: { 'kubernetes.io/namespace': 'y' } }, undefined, 'A2'),
    ],
    decision: 'deny',
  },
  {
    name: 'ok/second-allow-matches',
    statements: [
      allow({ StringEquals: { 'kubernetes.io/namespace': 'x' } }, undefined, 'A1'),
      allow(undefined, undefined, 'A2'),
    ],
    decision: 'allow',
    decidedBy: 'A2',
  },
  {
    name: 'fail/guardrail-deny-beats-role-allow',
    statements: [allow()],
    guardrails: [deny({ StringLike: { 'kubernetes.io/namespace': 'pr*' } }, 'G')],
    decision: 'deny',
    decidedBy: 'G',
  },
  // Principal forms
  {
    name: 'ok/principal-cluster-name',
    statements: [allow(undefined, { Federated: 'prod' })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/principal-issuer-url',
    statements: [allow(undefined, { Federated: ISSUER })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/principal-host-path',
    statements: [allow(undefined, { Federated: HOST_PATH })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/principal-oidc-provider-arn',
    statements: [
      allow(undefined, { Federated: `arn:aws:iam::111122223333:oidc-provider/${HOST_PATH}` }),
    ],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/principal-star',
    statements: [allow(undefined, '*')],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/principal-list',
    statements: [allow(undefined, { Federated: ['dev', 'prod'] })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/principal-other-cluster',
    statements: [allow(undefined, { Federated: 'dev' })],
    decision: 'deny',
  },
  {
    name: 'fail/principal-arn-other-issuer',
    statements: [
      allow(undefined, {
        Federated:
          'arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/OTHER',
      }),
    ],
    decision: 'deny',
  },
  {
    name: 'fail/principal-issuer-prefix-is-not-enough',
    statements: [allow(undefined, { Federated: 'oidc.eks.eu-west-1.amazonaws.com/id' })],
    decision: 'deny',
  },
  // Principal: the issuer's host is case-insensitive, its path is not; the URL form is exact
  {
    name: 'ok/principal-host-path-host-case-insensitive',
    statements: [allow(undefined, { Federated: 'ISSUER.example.com/tenants/alpha/' })],
    input: tenant,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/principal-host-path-path-case-sensitive',
    statements: [allow(undefined, { Federated: 'issuer.example.com/tenants/ALPHA' })],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'ok/principal-arn-host-case-insensitive',
    statements: [
      allow(undefined, {
        Federated: 'arn:aws:iam::111122223333:oidc-provider/Issuer.Example.COM/tenants/alpha',
      }),
    ],
    input: tenant,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/principal-arn-path-case-sensitive',
    statements: [
      allow(undefined, {
        Federated: 'arn:aws:iam::111122223333:oidc-provider/issuer.example.com/tenants/ALPHA',
      }),
    ],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'fail/principal-arn-account-not-12-digits',
    statements: [
      allow(undefined, {
        Federated: 'arn:aws:iam::1111:oidc-provider/issuer.example.com/tenants/alpha',
      }),
    ],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'ok/principal-issuer-url-exact',
    statements: [allow(undefined, { Federated: 'https://issuer.example.com/tenants/alpha' })],
    input: tenant,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/principal-issuer-url-other-scheme',
    statements: [allow(undefined, { Federated: 'http://issuer.example.com/tenants/alpha' })],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'fail/principal-issuer-url-other-host-case',
    statements: [allow(undefined, { Federated: 'https://ISSUER.example.com/tenants/alpha' })],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'fail/principal-issuer-url-other-path-case',
    statements: [allow(undefined, { Federated: 'https://issuer.example.com/tenants/ALPHA' })],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'fail/principal-issuer-url-trailing-slash',
    statements: [allow(undefined, { Federated: 'https://issuer.example.com/tenants/alpha/' })],
    input: tenant,
    decision: 'deny',
  },
  // IRSA keys and actions
  {
    name: 'ok/irsa-literal-policy',
    statements: [
      {
        Effect: 'Allow',
        Principal: { Federated: `arn:aws:iam::111122223333:oidc-provider/${HOST_PATH}` },
        Action: 'sts:AssumeRoleWithWebIdentity',
        Condition: {
          StringEquals: {
            [`${HOST_PATH}:sub`]: 'system:serviceaccount:prod:api',
            [`${HOST_PATH}:aud`]: 'sts.example.com',
          },
        },
      },
    ],
    decision: 'allow',
    decidedBy: 'role:r:statement[0]',
  },
  {
    name: 'fail/irsa-key-of-other-issuer-is-missing',
    statements: [
      allow({ StringEquals: { 'oidc.other.example.com:sub': 'system:serviceaccount:prod:api' } }),
    ],
    decision: 'deny',
  },
  {
    name: 'ok/irsa-key-host-and-claim-case-insensitive',
    statements: [
      allow({
        StringEquals: {
          [`${HOST_PATH.replace(/^[^/]+/, (host) => host.toUpperCase())}:SUB`]:
            'system:serviceaccount:prod:api',
        },
      }),
    ],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/irsa-key-path-is-case-sensitive',
    statements: [
      allow(
        {
          StringEquals: {
            'issuer.example.com/tenants/ALPHA:sub': 'system:serviceaccount:prod:api',
          },
        },
        { Federated: 'alpha' },
      ),
    ],
    input: tenant,
    decision: 'deny',
  },
  {
    name: 'ok/irsa-key-exact-path',
    statements: [
      allow(
        {
          StringEquals: {
            'Issuer.Example.com/tenants/alpha:sub': 'system:serviceaccount:prod:api',
          },
        },
        { Federated: 'alpha' },
      ),
    ],
    input: tenant,
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/token-claim-path-with-dotted-name',
    statements: [allow({ StringEquals: { 'token:kubernetes.io.pod.name': 'api-7d9f' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/request-token-type',
    statements: [allow({ StringLike: { 'request:token_type': '*:jwt' } })],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'ok/action-list-with-tag-session',
    statements: [{ ...allow(), Action: ['sts:TagSession', 'sts:AssumeRoleWithWebIdentity'] }],
    decision: 'allow',
    decidedBy: 'A',
  },
  // CEL
  {
    name: 'ok/cel-true',
    statements: [
      allow({
        Cel: 'claims["kubernetes.io"].namespace == "prod" && cluster == "prod" && "vault" in request.audience',
      }),
    ],
    decision: 'allow',
    decidedBy: 'A',
  },
  {
    name: 'fail/cel-false',
    statements: [allow({ Cel: ['cluster == "prod"', 'claims.sub.endsWith(":worker")'] })],
    decision: 'deny',
  },
  {
    name: 'fail/cel-error-fails-closed-in-allow',
    statements: [allow({ Cel: 'claims.missing == "x"' })],
    decision: 'deny',
  },
  {
    name: 'fail/cel-error-fires-deny',
    statements: [allow(), deny({ Cel: 'claims.missing == "x"' })],
    decision: 'deny',
    decidedBy: 'D',
  },
];

describe('policy evaluator (AWS IAM semantics)', () => {
  it('has at least 40 cases', () => expect(cases.length).toBeGreaterThanOrEqual(40));
  it.each(cases)('$name', ({ statements, guardrails, input: given, decision, decidedBy }) => {
    const texts = [
      roleText('r', statements),
      ...(guardrails ? [guardrailText('g', guardrails)] : []),
    ];
    const set = setOf(texts);
    const role = set.roles.get('r');
    if (!role) throw new Error('role missing');
    const result = set.decide(role, given ?? input());
    expect({ decision: result.decision, decidedBy: result.decidedBy }).toEqual({
      decision,
      decidedBy,
    });
    expect(result.explicitDeny).toBe(decision === 'deny' && decidedBy !== undefined);
  });
});
