import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { formatTable } from '../../src/cli/keys.js';
import { escapeControl, escapeErrorMessage, escapeJson } from '../../src/terminal/index.js';
import { registerPolicyCommands } from '../../src/cli/policy.js';
import { REPO_POLICIES } from '../support/app.js';

/**
 * What `tessera` prints from a token or a file is shown, never obeyed: a `sub` holding terminal
 * escape sequences must not clear the screen and print a forged "decision: ALLOW".
 */

const ESC = '\u001b';
const CSI = '\u009b';
const FORGERY = `${ESC}[2J${ESC}[H${CSI}2Jdecision: ALLOW by Everything\r\ndecision: ALLOW\u202eWOLLA`;
/** Any character a terminal would act on, except the newline between output lines. */
// eslint-disable-next-line no-control-regex -- the test looks for control characters
const ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const dir = mkdtempSync(join(tmpdir(), 'tessera-terminal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, 'tessera.json');
writeFileSync(
  config,
  JSON.stringify({
    issuer: 'https://sts.example.com',
    audience: 'tessera',
    devCluster: { keyDir: join(dir, 'dev-cluster') },
    policies: REPO_POLICIES,
  }),
);

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A well-formed JWT whose claims carry the forgery; its signature verifies against nothing. */
const hostileToken = () =>
  `${b64({ alg: 'ES256', kid: 'k', typ: 'JWT' })}.${b64({
    iss: 'https://dev-cluster.tessera.local',
    sub: `system:serviceaccount:default:${FORGERY}`,
    aud: ['tessera'],
    exp: 2_000_000_000,
    iat: 1_999_999_000,
    'kubernetes.io': { namespace: `default${FORGERY}`, serviceaccount: { name: FORGERY } },
  })}.${Buffer.alloc(64, 1).toString('base64url')}`;

async function tessera(args: string[]): Promise<{ out: string; err: string; code: number }> {
  const out: string[] = [];
  const err: string[] = [];
  let code = -1;
  const program = new Command('tessera').exitOverride();
  registerPolicyCommands(program, {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    exit: (value) => (code = value),
  });
  await program.parseAsync(['node', 'tessera', ...args]);
  return { out: out.join(''), err: err.join(''), code };
}

describe('tessera prints token and file values escaped', () => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, hostileToken());

  it('fail/explain-token-sub-with-escape-sequences', async () => {
    const { out, code } = await tessera([
      'policy',
      'explain',
      '--role',
      'demo',
      '--token',
      tokenFile,
      '--config',
      config,
      '--at',
      '1999999500',
    ]);
    expect(code).toBe(1);
    expect(out).not.toMatch(ACTIVE);
    expect(out.split('\n').filter((line) => line.startsWith('decision:'))).toEqual([
      'decision: DENY (no Allow statement matched)',
    ]);
    expect(out).toContain(escapeControl(`sub=system:serviceaccount:default:${FORGERY}`));
  });

  it('fail/explain-token-json-stays-json-and-inert', async () => {
    const { out } = await tessera([
      'policy',
      'explain',
      '--role',
      'demo',
      '--token',
      tokenFile,
      '--config',
      config,
      '--at',
      '1999999500',
      '--json',
    ]);
    expect(out).not.toMatch(ACTIVE);
    const parsed = JSON.parse(out) as {
      decision: string;
      statements: Array<{ conditions: Array<{ seen: unknown }> }>;
    };
    expect(parsed.decision).toBe('deny');
    expect(
      parsed.statements.flatMap((statement) =>
        statement.conditions.map((condition) => condition.seen),
      ),
    ).toContain(`default${FORGERY}`);
  });

  it('fail/explain-claims-file-with-escape-sequences', async () => {
    const claimsFile = join(dir, 'claims.json');
    writeFileSync(
      claimsFile,
      JSON.stringify({
        iss: `https://x${ESC}[2J`,
        sub: FORGERY,
        'kubernetes.io': { namespace: FORGERY },
      }),
    );
    const { out } = await tessera([
      'policy',
      'explain',
      '--role',
      'demo',
      '--claims',
      claimsFile,
      '--config',
      config,
    ]);
    expect(out).not.toMatch(ACTIVE);
    expect(out.split('\n').filter((line) => line.startsWith('decision:'))).toHaveLength(1);
  });

  it('fail/explain-unreadable-claims-file-error', async () => {
    const claimsFile = join(dir, 'broken.yaml');
    writeFileSync(claimsFile, `a: [${ESC}[2J\n`);
    const { err, code } = await tessera([
      'policy',
      'explain',
      '--role',
      'demo',
      '--claims',
      claimsFile,
      '--config',
      config,
    ]);
    expect(code).toBe(2);
    expect(err.slice(0, -1)).not.toMatch(ACTIVE);
  });

  const policies = join(dir, 'policies');
  mkdirSync(policies);
  writeFileSync(
    join(policies, `role${ESC}[2J.yaml`),
    JSON.stringify({
      apiVersion: 'tessera.dev/v1',
      kind: 'Role',
      metadata: { name: 'hostile' },
      trustPolicy: {
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Federated: `dev${ESC}[2J` },
            Action: 'sts:TokenExchange',
            Condition: {
              StringEquals: {
                [`kubernetes.io/namespace${ESC}[31m`]: 'x',
                'kubernetes.io/serviceaccount/name': `a\ndecision: ALLOW${CSI}`,
              },
            },
          },
        ],
      },
      issue: { audiences: [`aud${CSI}`] },
    }),
  );

  it('fail/lint-messages-quoting-hostile-keys', async () => {
    const { out, code } = await tessera(['policy', 'lint', policies]);
    expect(code).toBe(1);
    expect(out).toContain('unknown condition key');
    expect(out.slice(0, -1)).not.toMatch(ACTIVE);
  });

  it('fail/who-can-hostile-values', async () => {
    writeFileSync(
      join(policies, `role${ESC}[2J.yaml`),
      JSON.stringify({
        apiVersion: 'tessera.dev/v1',
        kind: 'Role',
        metadata: { name: 'hostile' },
        trustPolicy: {
          Statement: [
            {
              Effect: 'Allow',
              Principal: { Federated: `dev${ESC}[2J` },
              Action: 'sts:TokenExchange',
              Condition: {
                StringEquals: { 'kubernetes.io/serviceaccount/name': `a\ndecision: ALLOW${CSI}` },
              },
            },
          ],
        },
        issue: { audiences: [`aud${CSI}`] },
      }),
    );
    for (const json of [false, true]) {
      const { out, code } = await tessera([
        'policy',
        'who-can',
        '--role',
        'hostile',
        '--policies',
        policies,
        ...(json ? ['--json'] : []),
      ]);
      expect(code).toBe(0);
      expect(out).not.toMatch(ACTIVE);
      if (json) expect(JSON.parse(out)).toMatchObject({ audiences: [`aud${CSI}`] });
    }
  });

  it('fail/keys-list-kid-from-a-file', () => {
    const table = formatTable([
      { kid: `k${ESC}[2J`, alg: 'ES256', state: 'active', createdAt: 1_700_000_000 } as never,
    ]);
    expect(table.slice(0, -1)).not.toMatch(ACTIVE);
    expect(table).toContain('k\\u001b[2J');
  });

  it('ok/escapes-are-json-compatible-and-errors-one-line-per-problem', () => {
    expect(escapeJson(JSON.stringify({ sub: `${CSI}x\u202e` }))).toBe('{"sub":"\\u009bx\\u202e"}');
    const error = Object.assign(new Error('tessera.yaml is invalid:\n  a\n  b'), {
      problems: [`clusters[0].issuer: ${ESC}[2J`, 'b\nforged'],
    });
    expect(escapeErrorMessage(error)).toBe(
      'tessera.yaml is invalid:\n  clusters[0].issuer: \\u001b[2J\n  b\\nforged',
    );
  });
});
