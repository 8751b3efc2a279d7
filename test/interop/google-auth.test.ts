import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExternalAccountClient } from 'google-auth-library';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

/**
 * GCP's own client library as the pod's client: its external-account (workload identity
 * federation) flow reads the SA token from a file and performs the RFC 8693 exchange against
 * `token_url`, sending the `scope` every Google client sends.
 */
let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
  dir = mkdtempSync(join(tmpdir(), 'tessera-gcp-'));
});
afterAll(async () => {
  await t?.close();
});

describe('google-auth-library external account client', () => {
  it('exchanges a file-sourced SA token at Tessera and gets a usable access token', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, await t.devToken('billing', 'payer'));
    const client = ExternalAccountClient.fromJSON({
      type: 'external_account',
      audience: 'sts.amazonaws.com',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${t.url}/v1/token`,
      credential_source: { file: tokenFile },
    });
    expect(client).not.toBeNull();
    const { token } = await client!.getAccessToken();
    const jwks = (await (await fetch(`${t.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(token as string, createLocalJWKSet(jwks), {
      issuer: t.url,
      audience: 'sts.amazonaws.com',
    });
    expect(payload).toMatchObject({
      sub: 'system:serviceaccount:billing:payer@dev',
      tessera: { role: 'billing', cluster: 'dev' },
    });
  });
});
