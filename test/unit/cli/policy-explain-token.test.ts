import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { refusalSummary, registerPolicyCommands } from '../../../src/cli/policy.js';
import { parseConfig } from '../../../src/config/index.js';
import { loadDevCluster } from '../../../src/dev-cluster/index.js';
import { invalidRequest } from '../../../src/errors.js';
import { REPO_POLICIES } from '../../support/app.js';

/** `policy explain --token`: the token line says whether the signature and claims verify, and if not, why. */

const dir = mkdtempSync(join(tmpdir(), 'tessera-explain-token-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const configFile = join(dir, 'tessera.json');
const configInput = {
  issuer: 'https://sts.example.com',
  audience: 'tessera',
  devCluster: { keyDir: join(dir, 'dev-cluster') },
  policies: REPO_POLICIES,
};
writeFileSync(configFile, JSON.stringify(configInput));
const AT = 1_900_000_000;

async function devTokenFile(name: string, issuedAt: number): Promise<string> {
  const { devCluster, audience } = parseConfig(configInput);
  if (!devCluster) throw new Error('the test config has a dev cluster');
  const dev = await loadDevCluster(devCluster, audience);
  const file = join(dir, name);
  writeFileSync(
    file,
    await dev.signToken({
      namespace: 'default',
      serviceAccount: 'web',
      audience,
      ttlSeconds: 600,
      now: issuedAt,
    }),
  );
  return file;
}

async function explainToken(
  tokenFile: string,
): Promise<{ tokenLine: string | undefined; code: number }> {
  const out: string[] = [];
  let code = -1;
  const program = new Command('tessera').exitOverride();
  registerPolicyCommands(program, {
    out: (text) => out.push(text),
    err: (text) => out.push(text),
    exit: (value) => (code = value),
  });
  await program.parseAsync([
    'node',
    'tessera',
    'policy',
    'explain',
    '--role',
    'demo',
    '--token',
    tokenFile,
    '--config',
    configFile,
    '--at',
    String(AT),
  ]);
  return {
    tokenLine: out
      .join('')
      .split('\n')
      .find((line) => line.startsWith('token: ')),
    code,
  };
}

describe('policy explain --token', () => {
  it('ok/a-valid-dev-token-verifies', async () => {
    expect(await explainToken(await devTokenFile('fresh', AT - 60))).toEqual({
      tokenLine: 'token: signature and claims verify (cluster dev)',
      code: 0,
    });
  });

  it('fail/an-expired-token-says-why-it-would-not-verify', async () => {
    const { tokenLine } = await explainToken(await devTokenFile('expired', AT - 3600));
    // The description, then the verifier's enumerated reason when it gives one.
    expect(tokenLine).toMatch(
      /^token: would NOT verify: subject_token is expired( \[[a-z0-9_]+\])?$/,
    );
  });
});

describe('refusalSummary', () => {
  it.each([
    [
      'ok/description-and-enumerated-reason',
      invalidRequest('subject_token is malformed', { reason: 'malformed_body' }),
      'subject_token is malformed [malformed_body]',
    ],
    [
      'ok/log-detail-never-shown',
      invalidRequest('subject_token is not valid', {
        reason: 'unknown_kid',
        detail: { kid: 'abc', problem: 'kid abc not in the JWKS' },
      }),
      'subject_token is not valid [unknown_kid]',
    ],
    [
      'ok/any-other-error-by-its-message',
      new Error('timed out reaching the issuer'),
      'timed out reaching the issuer',
    ],
  ])('%s', (_name, error, expected) => {
    expect(refusalSummary(error)).toBe(expected);
  });
});
