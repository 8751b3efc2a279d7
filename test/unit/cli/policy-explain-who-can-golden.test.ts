import { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { registerPolicyCommands } from '../../../src/cli/policy.js';

const GOLDEN = 'test/unit/trust-policies/fixtures/golden';
const POLICIES = join(GOLDEN, 'policies');
const AT = '2024-01-01T00:00:00Z';

/** Runs `tessera policy …` in process; with UPDATE_GOLDEN=1 the expected files are rewritten. */
async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  let code = -1;
  const program = new Command('tessera').exitOverride();
  registerPolicyCommands(program, {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    exit: (c) => (code = c),
  });
  await program.parseAsync(['node', 'tessera', 'policy', ...args]);
  return { out: out.join(''), err: err.join(''), code };
}

function golden(name: string, actual: string): string {
  const path = join(GOLDEN, 'expected', name);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  return readFileSync(path, 'utf8');
}

const explainCases = [
  { name: 'ok/orders-reader-allowed', role: 'orders-reader', claims: 'orders-api-reader', code: 0 },
  {
    name: 'fail/orders-reader-sandbox-deny',
    role: 'orders-reader',
    claims: 'orders-sandbox',
    code: 1,
  },
  { name: 'fail/guardrail-kube-system', role: 'ci-deployer', claims: 'kube-system', code: 1 },
  { name: 'ok/ci-deployer-cel', role: 'ci-deployer', claims: 'ci-deployer', code: 0 },
  { name: 'ok/shadow-disagrees', role: 'shadowed', claims: 'orders-api-reader', code: 0 },
];

describe('tessera policy explain (golden)', () => {
  it.each(explainCases)('$name', async ({ role, claims, code }) => {
    const args = [
      'explain',
      '--role',
      role,
      '--claims',
      join(GOLDEN, 'claims', `${claims}.json`),
      '--cluster',
      'dev',
      '--policies',
      POLICIES,
      '--at',
      AT,
    ];
    const text = await run(args);
    expect({ code: text.code, err: text.err }).toEqual({ code, err: '' });
    expect(text.out).toBe(golden(`explain-${role}-${claims}.txt`, text.out));
    const json = await run([...args, '--json']);
    expect(json.out).toBe(golden(`explain-${role}-${claims}.json`, json.out));
    const parsed = JSON.parse(json.out) as {
      decision: string;
      decidedBy: unknown;
      statements: unknown[];
    };
    expect(parsed.decision).toBe(code === 0 ? 'allow' : 'deny');
  });

  it('fail/needs-token-or-claims', async () => {
    expect(await run(['explain', '--role', 'shadowed', '--policies', POLICIES])).toEqual({
      out: '',
      err: 'policy explain: give exactly one of --token FILE or --claims FILE\n',
      code: 2,
    });
  });

  it('fail/unknown-role', async () => {
    const result = await run([
      'explain',
      '--role',
      'nope',
      '--claims',
      join(GOLDEN, 'claims', 'ci-deployer.json'),
      '--policies',
      POLICIES,
    ]);
    expect(result).toEqual({
      out: '',
      err: 'policy explain: no role "nope" (known: ci-deployer, orders-reader, shadowed)\n',
      code: 2,
    });
  });
});

describe('tessera policy who-can (golden)', () => {
  it.each(['orders-reader', 'ci-deployer', 'shadowed'])('ok/%s', async (role) => {
    const text = await run(['who-can', '--role', role, '--policies', POLICIES]);
    expect(text.code).toBe(0);
    expect(text.out).toBe(golden(`who-can-${role}.txt`, text.out));
  });

  it('ok/json', async () => {
    const result = await run([
      'who-can',
      '--role',
      'orders-reader',
      '--policies',
      POLICIES,
      '--json',
    ]);
    expect(JSON.parse(result.out)).toEqual({
      role: 'orders-reader',
      file: join(POLICIES, 'orders-reader.yaml'),
      audiences: ['https://vault.example.com'],
      maxLifetime: 3600,
      allows: [
        {
          statement: 'OrdersNamespaces',
          clusters: ['dev'],
          namespaces: ['orders-*'],
          serviceAccounts: ['*'],
          subjects: [],
          also: [
            'StringEquals dev-cluster.tessera.local:aud "tessera"',
            'StringNotEquals kubernetes.io/serviceaccount/name "worker"',
          ],
        },
      ],
      denies: [
        {
          statement: 'NeverKubeSystem',
          source: 'guardrail:baseline',
          when: ['StringEquals kubernetes.io/namespace "kube-system"'],
        },
        {
          statement: 'NeverDefaultServiceAccount',
          source: 'guardrail:baseline',
          when: ['StringEquals kubernetes.io/serviceaccount/name "default"'],
        },
        {
          statement: 'NoSandbox',
          source: 'role:orders-reader',
          when: ['StringLike kubernetes.io/namespace "*-sandbox"'],
        },
      ],
    });
  });
});
