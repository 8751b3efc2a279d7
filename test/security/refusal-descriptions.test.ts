import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { writePolicies } from '../support/policies.js';
import { EC_P256, opensslCsr, tempDir } from '../support/x509.js';

/**
 * A refusal names the failing condition or template variable, never a CEL library message or
 * a rendered SPIFFE ID or DNS name (built from the token's claims, so anything a claim held):
 * those go to the log.
 */

const X509 = 'urn:tessera:params:oauth:token-type:x509-svid';

const role = (name: string, body: string) => `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: ${name} }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: Dev
      Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
${body}`;

const POLICIES = {
  'cel-overload.yaml': role(
    'cel-overload',
    `      Condition:
        Cel: 'claims.exp.startsWith("17")'
issue: { audiences: [cel-overload] }
`,
  ),
  'cel-missing-key.yaml': role(
    'cel-missing-key',
    `      Condition:
        Cel: 'claims["kubernetes.io"].pod.labels.tier == "web"'
issue: { audiences: [cel-missing-key] }
`,
  ),
  'spiffe.yaml': role(
    'spiffe',
    `issue:
  audiences: [spiffe]
  x509:
    spiffeId: "spiffe://example.org/ns/{{namespace}}/sa/{{serviceAccount}}"
    dnsNames: ["{{serviceAccount}}.{{namespace}}.svc"]
`,
  ),
  'other-domain.yaml': role(
    'other-domain',
    `issue:
  audiences: [other-domain]
  x509:
    spiffeId: "spiffe://elsewhere.example/ns/{{namespace}}"
`,
  ),
};

describe('refusal descriptions never carry library errors or rendered values', () => {
  let t: TestApp;
  const workspace = tempDir();
  let csr: string;
  beforeAll(async () => {
    t = await startTestApp({ policies: writePolicies(POLICIES) });
    csr = opensslCsr(workspace.dir, EC_P256).csrPem;
  });
  afterAll(async () => {
    await t?.close();
    workspace.cleanup();
  });

  const exchange = (subject: string, params: Record<string, string>) =>
    postToken(
      t.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subject,
        subject_token_type: JWT_TYPE,
        ...params,
      }),
    );

  const cases: Array<{
    name: string;
    namespace?: string;
    serviceAccount: string;
    params: () => Record<string, string>;
    status: number;
    description: string;
    logged?: RegExp;
  }> = [
    {
      name: 'fail/cel-no-matching-overload',
      serviceAccount: 'api',
      params: () => ({ resource: 'cel-overload' }),
      status: 403,
      description: 'role "cel-overload" denied: condition Cel[0] could not be evaluated',
      logged: /no matching overload/,
    },
    {
      name: 'fail/cel-no-such-key',
      serviceAccount: 'api',
      params: () => ({ resource: 'cel-missing-key' }),
      status: 403,
      description: 'role "cel-missing-key" denied: condition Cel[0] could not be evaluated',
      logged: /No such key: labels/,
    },
    {
      name: 'fail/spiffe-template-dot-segment-names-the-variable',
      serviceAccount: '..',
      params: () => ({ resource: 'spiffe', requested_token_type: X509, csr }),
      status: 400,
      description:
        "the token's value of {{serviceAccount}} cannot be used in the role's x509.spiffeId: it is a dot segment",
    },
    {
      name: 'fail/template-value-with-control-characters-never-echoed',
      serviceAccount: 'Evil\u001b[2J',
      params: () => ({ resource: 'spiffe', requested_token_type: X509, csr }),
      status: 400,
      description:
        "the token's value of {{serviceAccount}} cannot be used in the role's x509.spiffeId: it contains characters outside [A-Za-z0-9._-]",
    },
    {
      name: 'fail/dns-name-rendered-uppercase-names-the-field',
      serviceAccount: 'Web',
      params: () => ({ resource: 'spiffe', requested_token_type: X509, csr }),
      status: 400,
      description:
        "the role's x509.dnsNames do not render to valid DNS names: one must be lowercase letters, digits and hyphens in labels of 1 to 63 characters",
      logged: /Web\.default\.svc/,
    },
    {
      name: 'fail/spiffe-id-other-trust-domain-names-the-field',
      serviceAccount: 'api',
      params: () => ({ resource: 'other-domain', requested_token_type: X509, csr }),
      status: 400,
      description:
        "the role's x509.spiffeId does not render to a valid SPIFFE ID: it must be in trust domain example.org",
      logged: /spiffe:\/\/elsewhere\.example\/ns\/default/,
    },
  ];
  it.each(cases)(
    '$name',
    async ({ namespace, serviceAccount, params, status, description, logged }) => {
      const answer = await exchange(
        await t.devToken(namespace ?? 'default', serviceAccount),
        params(),
      );
      expect({ status: answer.status, description: answer.json.error_description }).toEqual({
        status,
        description,
      });
      if (logged) expect(t.logs.text()).toMatch(logged);
    },
  );
});
