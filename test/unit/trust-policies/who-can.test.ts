import { describe, expect, it } from 'vitest';
import { formatWhoCan, whoCan } from '../../../src/trust-policies/index.js';
import { allow, deny, HOST_PATH, roleText, setOf } from './helpers.js';

/** The allow and except lines of `policy who-can` for one role of one statement list. */
function lines(statements: unknown[]): string[] {
  const set = setOf([roleText('r', statements)]);
  const role = set.roles.get('r');
  if (!role) throw new Error('role missing');
  return formatWhoCan(whoCan(set, role)).split('\n').slice(3, -1);
}

const cases: Array<{ name: string; statements: unknown[]; expected: string[] }> = [
  {
    name: 'ok/string-equals-lists-the-namespace',
    statements: [allow({ StringEquals: { 'kubernetes.io/namespace': 'prod' } })],
    expected: [
      'allow A:',
      '  clusters:         prod',
      '  namespaces:       prod',
      '  service accounts: *',
    ],
  },
  {
    name: 'ok/if-exists-namespace-admits-tokens-without-one',
    statements: [
      allow({ StringEqualsIfExists: { 'kubernetes.io/namespace': ['prod', 'staging'] } }),
    ],
    expected: [
      'allow A:',
      '  clusters:         prod',
      '  namespaces:       prod, staging (or key absent)',
      '  service accounts: *',
    ],
  },
  {
    name: 'ok/if-exists-service-account-like',
    statements: [
      allow({
        StringEquals: { 'kubernetes.io/namespace': 'prod' },
        StringLikeIfExists: { 'kubernetes.io/serviceaccount/name': 'api-*' },
      }),
    ],
    expected: [
      'allow A:',
      '  clusters:         prod',
      '  namespaces:       prod',
      '  service accounts: api-* (or key absent)',
    ],
  },
  {
    name: 'ok/if-exists-sub-admits-tokens-without-the-issuer-key',
    statements: [
      allow({ StringEqualsIfExists: { [`${HOST_PATH}:sub`]: 'system:serviceaccount:prod:api' } }),
    ],
    expected: [
      'allow A:',
      '  clusters:         prod',
      '  namespaces:       prod (or key absent)',
      '  service accounts: api (or key absent)',
      '  subjects:         system:serviceaccount:prod:api (or key absent)',
    ],
  },
  {
    name: 'ok/if-exists-deny-carve-out',
    statements: [allow(), deny({ StringEqualsIfExists: { 'kubernetes.io/pod/name': 'debug' } })],
    expected: [
      'allow A:',
      '  clusters:         prod',
      '  namespaces:       *',
      '  service accounts: *',
      'except (Deny):',
      '  [role:r] D: StringEqualsIfExists kubernetes.io/pod/name "debug" (or key absent)',
    ],
  },
];

describe('policy who-can', () => {
  it.each(cases)('$name', ({ statements, expected }) => {
    expect(lines(statements)).toEqual(expected);
  });
});
