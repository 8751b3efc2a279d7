import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TesseraApp } from '../../src/app.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** Hot reload with a running server: exchanges go on while files are added, changed, broken, fixed and deleted. */

const role = (
  name: string,
  namespace: string,
  operator = 'StringEquals',
) => `apiVersion: tessera.dev/v1
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
    subject_token: await app.devCluster.signToken({
      namespace,
      serviceAccount: 'api',
      audience: 'tessera',
    }),
    resource,
  });
  const response = await fetch(`${url}/v1/token`, { method: 'POST', body });
  await response.arrayBuffer();
  return response.status;
}

/** Reload passes of the app's policy store so far that ended in `result`. */
async function reloadCount(result: 'success' | 'failure'): Promise<number> {
  return (
    (await app.metrics.policyReloads.get()).values.find((v) => v.labels.result === result)?.value ??
    0
  );
}

/**
 * Makes a change on disk and waits for the watcher to take it in: a new set in force
 * ('success') or a rejected file ('failure'). No deadline of its own (the test timeout
 * bounds it), so a loaded machine slows the test down instead of failing it.
 */
async function afterReload(result: 'success' | 'failure', change: () => void): Promise<void> {
  const before = await reloadCount(result);
  change();
  while ((await reloadCount(result)) === before)
    await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('hot reload under traffic', () => {
  it('ok/decisions-switch-on-reload-and-no-request-fails', async () => {
    const statuses: number[] = [];
    let running = true;
    const background = (async () => {
      while (running) statuses.push(await exchange('prod', 'a'));
    })();

    expect(await exchange('prod', 'a')).toBe(200);
    // add
    await afterReload('success', () => writeFileSync(join(policies, 'b.yaml'), role('b', 'dev')));
    expect(await exchange('dev', 'b')).toBe(200);
    // change
    await afterReload('success', () => writeFileSync(join(policies, 'b.yaml'), role('b', 'qa')));
    expect(await exchange('qa', 'b')).toBe(200);
    expect(await exchange('dev', 'b')).toBe(403);
    // break: the broken file is rejected and the last good version stays in force
    await afterReload('failure', () =>
      writeFileSync(join(policies, 'b.yaml'), role('b', 'staging', 'StringEqualz')),
    );
    for (let i = 0; i < 5; i += 1) {
      expect(await exchange('qa', 'b')).toBe(200);
      expect(await exchange('staging', 'b')).toBe(403);
    }
    // fix
    await afterReload('success', () =>
      writeFileSync(join(policies, 'b.yaml'), role('b', 'staging')),
    );
    expect(await exchange('staging', 'b')).toBe(200);
    // delete
    await afterReload('success', () => unlinkSync(join(policies, 'b.yaml')));
    expect(await exchange('staging', 'b')).toBe(400);

    running = false;
    await background;
    // Role a never changed: every background exchange succeeded through every reload.
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([200]));
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    const failures = (await app.metrics.policyReloads.get()).values.find(
      (v) => v.labels.result === 'failure',
    );
    expect(failures?.value).toBeGreaterThanOrEqual(1);
  });
});
