import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JWT_TYPE, startTestApp, TOKEN_EXCHANGE, type TestApp } from '../support/app.js';
import { writePolicies } from '../support/policies.js';

const role = (name: string, audience: string) => `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: ${name} }
trustPolicy:
  Statement:
    - { Effect: Allow, Principal: { Federated: dev }, Action: sts:TokenExchange, Condition: { StringEquals: { "kubernetes.io/namespace": default } } }
issue:
  audiences: ["${audience}"]
`;

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    policies: writePolicies({
      'aws.yaml': role('aws', 'sts.amazonaws.com'),
      'gcp.yaml': role(
        'gcp',
        '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/tessera',
      ),
    }),
  });
});
afterAll(async () => {
  await t?.close();
});

async function exchange(
  resource: string,
  serviceAccount: string,
): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${t.url}/v1/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: JWT_TYPE,
      subject_token: await t.devToken('default', serviceAccount),
      resource,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

describe('subjects a cloud would refuse are refused at the exchange, naming the limit', () => {
  // system:serviceaccount:default: is 30 characters.
  it.each([
    ['ok/aws-at-255', 'aws', 'a'.repeat(225), 200, undefined],
    [
      'fail/aws-over-255',
      'aws',
      'a'.repeat(226),
      400,
      "the issued subject would be 256 characters; AWS's SubjectFromWebIdentityToken allows at most 255",
    ],
    ['ok/gcp-at-127-bytes', 'gcp', 'g'.repeat(97), 200, undefined],
    [
      'fail/gcp-over-127-bytes',
      'gcp',
      'g'.repeat(98),
      400,
      "the issued subject would be 128 bytes; GCP's google.subject allows at most 127",
    ],
  ])('%s', async (_name, resource, serviceAccount, status, description) => {
    const { status: got, body } = await exchange(resource, serviceAccount);
    if (description)
      expect({ got, body }).toEqual({
        got: status,
        body: { error: 'invalid_request', error_description: description },
      });
    else {
      expect(got).toBe(status);
      expect(decodeJwt(body.access_token as string).sub).toBe(
        `system:serviceaccount:default:${serviceAccount}`,
      );
    }
  });
});
