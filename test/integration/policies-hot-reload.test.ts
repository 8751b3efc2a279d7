import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraApp } from '../../src/app.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** Hot reload with a running server: exchanges go on while files are added, changed, broken, fixed and deleted. */

const role = (name: string, namespace: string, operator = 'StringEquals') => `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: ${name} }
trustPolicy:
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition: { ${operator}: { kubernetes.io/namespace: ${namespace} } }
issue: { audiences: [${name}] }
`;

let root: string;
let policies: string;
let t: TestApp;
let app: TesseraApp;
let url: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'tessera-hot-reload-'));
  policies = join(root, 'policies');
  mkdirSync(policies);
  writeFileSync(join(policies, 'a.yaml'), role('a', 'prod'));
  t = await startTestApp({ policies }, { watchPolicies: true });
  ({ app, url } = t);
});

afterAll(async () => {
  await t?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function exchange(namespace: string, resource: string): Promise<number> {
  if (!app.devCluster) throw new Error('dev cluster missing');
  const body = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    subject_token: await app.devCluster.signToken({ namespace, serviceAccount: 'api', audience: 'tessera' }),
    resource,
  });
  const response = await fetch(`${url}/v1/token`, { method: 'POST', body });
  await response.arrayBuffer();
  return response.status;
}

async function within2s(namespace: string, resource: string, status: number): Promise<void> {
  const deadline = Date.now() + 2000;
  let last = 0;
  while (Date.now() < deadline) {
    last = await exchange(namespace, resource);
    if (last === status) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${resource} for ${namespace} still answers ${last}, not ${status}, after 2 s`);
}

describe('hot reload under traffic', () => {
  it('ok/decisions-switch-within-2s-and-no-request-fails', async () => {
    const statuses: number[] = [];
    let running = true;
    const background = (async () => {
      while (running) statuses.push(await exchange('prod', 'a'));
    })();

    expect(await exchange('prod', 'a')).toBe(200);
    // add
    writeFileSync(join(policies, 'b.yaml'), role('b', 'dev'));
    await within2s('dev', 'b', 200);
    // change
    writeFileSync(join(policies, 'b.yaml'), role('b', 'qa'));
    await within2s('qa', 'b', 200);
    expect(await exchange('dev', 'b')).toBe(403);
    // break: the last good version stays in force for the whole window
    writeFileSync(join(policies, 'b.yaml'), role('b', 'staging', 'StringEqualz'));
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      expect(await exchange('qa', 'b')).toBe(200);
      expect(await exchange('staging', 'b')).toBe(403);
    }
    // fix
    writeFileSync(join(policies, 'b.yaml'), role('b', 'staging'));
    await within2s('staging', 'b', 200);
    // delete
    unlinkSync(join(policies, 'b.yaml'));
    await within2s('staging', 'b', 400);

    running = false;
    await background;
    // Role a never changed: every background exchange succeeded through every reload.
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([200]));
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    const failures = (await app.metrics.policyReloads.get()).values.find((v) => v.labels.result === 'failure');
    expect(failures?.value).toBeGreaterThanOrEqual(1);
  });
});
