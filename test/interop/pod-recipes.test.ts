import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fromTokenFile } from '@aws-sdk/credential-providers';
import { ExternalAccountClient } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, runAgent } from 'tessera-sts/sdk';
import { startTestApp, type TestApp } from '../support/app.js';
import { startEntra, type EntraStandIn } from '../support/entra.js';
import { writePolicies } from '../support/policies.js';
import {
  startAwsSts,
  startGcpSts,
  verifyThroughDiscovery,
  type RelyingParty,
} from '../support/relying-parties.js';

/**
 * The README's "Use it from a pod" recipes, each with the client library the pod would run:
 * the sidecar agent keeps a token file fresh and the cloud's own SDK reads it, as it reads a
 * kubelet-projected token. The clouds are local stand-ins that verify the token through
 * Tessera's discovery document and JWKS.
 */
const GCP_AUDIENCE =
  '//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pods/providers/tessera';
const role = (name: string, audience: string) => `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: ${name} }
trustPolicy:
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition: { StringEquals: { "kubernetes.io/namespace": shop, "kubernetes.io/serviceaccount/name": checkout } }
issue:
  audiences: ["${audience}"]
  maxLifetime: 1h
  defaultLifetime: 30m
`;

let t: TestApp;
let aws: RelyingParty;
let gcp: RelyingParty;
let entra: EntraStandIn;
let dir: string;
let saToken: string;
const run = promisify(execFile);
const AZURE = {
  tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  clientId: '5c3b0e1d-9a7f-4e26-b8d4-c1a0f3e2d1c0',
};

beforeAll(async () => {
  t = await startTestApp({
    policies: writePolicies({
      'aws.yaml': role('s3-reader', 'sts.amazonaws.com'),
      'gcp.yaml': role('gcs-reader', GCP_AUDIENCE),
      'azure.yaml': role('blob-reader', 'api://AzureADTokenExchange'),
    }),
  });
  [aws, gcp, entra] = await Promise.all([
    startAwsSts({ issuer: t.url }),
    startGcpSts({ issuer: t.url }),
    startEntra({ issuer: t.url, ...AZURE, subject: 'system:serviceaccount:shop:checkout' }),
  ]);
  dir = mkdtempSync(join(tmpdir(), 'tessera-recipes-'));
  saToken = join(dir, 'sa-token');
  writeFileSync(saToken, await t.devToken('shop', 'checkout'));
});
afterAll(async () => {
  await Promise.all([aws?.close(), gcp?.close(), entra?.close()]);
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

const agentOnce = async (resource: string): Promise<string> => {
  const out = join(dir, resource);
  await runAgent({ endpoint: t.url, tokenFile: saToken, resource, out, type: 'jwt', once: true });
  return join(out, 'token');
};

describe('use it from a pod', () => {
  it('the SDK: getToken() returns a JWT a relying party verifies through discovery', async () => {
    const client = createClient({ endpoint: t.url, tokenFile: saToken, resource: 'gcs-reader' });
    const claims = await verifyThroughDiscovery(await client.getToken(), t.url, GCP_AUDIENCE);
    expect(claims).toMatchObject({
      sub: 'system:serviceaccount:shop:checkout',
      tessera: { role: 'gcs-reader', cluster: 'dev' },
    });
  });

  it('AWS: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, the AWS SDK v3 web-identity provider, the agent keeping the file', async () => {
    const tokenFile = await agentOnce('s3-reader');
    const saved = { ...process.env };
    process.env.AWS_ROLE_ARN = 'arn:aws:iam::111122223333:role/s3-reader';
    process.env.AWS_WEB_IDENTITY_TOKEN_FILE = tokenFile;
    process.env.AWS_ROLE_SESSION_NAME = 'checkout';
    try {
      const credentials = await fromTokenFile({
        clientConfig: { endpoint: aws.url, region: 'eu-west-1' },
      })();
      expect(credentials.accessKeyId).toMatch(/^ASIA[0-9A-F]{16}$/);
      expect(credentials.sessionToken).toBeTruthy();
      expect(credentials.expiration?.getTime()).toBeGreaterThan(Date.now());
    } finally {
      process.env = saved;
    }
    expect(aws.accepted.at(-1)).toMatchObject({
      iss: t.url,
      aud: 'sts.amazonaws.com',
      sub: 'system:serviceaccount:shop:checkout',
    });
  });

  it('GCP: an external_account credential whose credential_source is the agent-kept file', async () => {
    const tokenFile = await agentOnce('gcs-reader');
    const client = ExternalAccountClient.fromJSON({
      type: 'external_account',
      audience: GCP_AUDIENCE,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${gcp.url}/v1/token`,
      credential_source: { file: tokenFile },
    });
    const { token } = await client!.getAccessToken();
    expect(token).toMatch(/^ya29\./);
    expect(gcp.accepted.at(-1)).toMatchObject({
      iss: t.url,
      aud: GCP_AUDIENCE,
      sub: 'system:serviceaccount:shop:checkout',
    });
    expect(readFileSync(tokenFile, 'utf8')).not.toMatch(/\s$/);
  });

  it('Azure: WorkloadIdentityCredential with AZURE_FEDERATED_TOKEN_FILE on the agent-kept file', async () => {
    const tokenFile = await agentOnce('blob-reader');
    const caFile = join(dir, 'entra-ca.pem');
    writeFileSync(caFile, entra.caPem);
    const { stdout } = await run(
      process.execPath,
      [resolve(import.meta.dirname, '../support/azure-client.mjs')],
      {
        env: {
          ...process.env,
          AZURE_TENANT_ID: AZURE.tenantId,
          AZURE_CLIENT_ID: AZURE.clientId,
          AZURE_FEDERATED_TOKEN_FILE: tokenFile,
          AZURE_AUTHORITY_HOST: entra.url,
          NODE_EXTRA_CA_CERTS: caFile,
        },
      },
    ).catch((error: Error & { stderr?: string }) => {
      throw new Error(
        `azure client failed (requests seen: ${entra.seen.join(', ')}): ${error.stderr ?? error.message}`,
      );
    });
    expect((JSON.parse(stdout) as { token: string }).token).toMatch(/^entra\./);
    expect(entra.accepted.at(-1)).toMatchObject({
      iss: t.url,
      aud: 'api://AzureADTokenExchange',
      sub: 'system:serviceaccount:shop:checkout',
    });
  });
});
