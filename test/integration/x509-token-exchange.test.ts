import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JWT_TYPE,
  TOKEN_EXCHANGE,
  exchangeForm,
  postToken,
  startTestApp,
  type TestApp,
} from '../support/app.js';
import { EC_P256, openssl, opensslCsr, tempDir, writeFiles } from '../support/x509.js';

/** POST /v1/token with requested_token_type x509-svid, end to end through the app. */

const X509_SVID = 'urn:tessera:params:oauth:token-type:x509-svid';
const workspace = tempDir();
let test: TestApp;

const role = (name: string, x509: string) => `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: ${name} }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: Dev
      Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition:
        StringEquals:
          kubernetes.io/namespace: shop
issue:
  audiences: [${name}]
  maxLifetime: 1h
${x509}`;

beforeAll(async () => {
  const policies = join(workspace.dir, 'policies');
  mkdirSync(policies);
  writeFileSync(
    join(policies, 'svid.yaml'),
    role(
      'svid',
      '  x509:\n    spiffeId: "spiffe://example.org/ns/{{namespace}}/sa/{{serviceAccount}}"\n    maxTtl: 30m\n    dnsNames: ["{{serviceAccount}}.{{namespace}}.svc"]\n',
    ),
  );
  writeFileSync(join(policies, 'jwt-only.yaml'), role('jwt-only', ''));
  test = await startTestApp({ policies });
});
afterAll(async () => {
  await test?.close();
  workspace.cleanup();
});

const exchange = async (params: Record<string, string>) =>
  postToken(
    test.url,
    exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: JWT_TYPE,
      subject_token: await test.devToken('shop', 'orders'),
      requested_token_type: X509_SVID,
      ...params,
    }),
  );

describe('POST /v1/token for an x509-svid', () => {
  it('ok/pem-csr-gets-a-verifiable-svid', async () => {
    const { status, json } = await exchange({
      resource: 'svid',
      csr: opensslCsr(workspace.dir, EC_P256).csrPem,
      duration_seconds: '600',
    });
    expect(status).toBe(200);
    expect(Object.keys(json).sort()).toEqual([
      'access_token',
      'certificate',
      'certificate_chain',
      'expires_in',
      'issued_token_type',
      'token_type',
      'trust_bundle',
    ]);
    expect({
      issued_token_type: json.issued_token_type,
      token_type: json.token_type,
      expires_in: json.expires_in,
    }).toEqual({
      issued_token_type: X509_SVID,
      token_type: 'N_A',
      expires_in: 600,
    });
    expect(json.access_token).toBe(json.certificate);
    expect(json.certificate_chain).toEqual([json.certificate]);
    const leaf = new X509Certificate(json.certificate as string);
    expect(leaf.subjectAltName).toBe(
      'URI:spiffe://example.org/ns/shop/sa/orders, DNS:orders.shop.svc',
    );
    expect(leaf.ca).toBe(false);
    const files = writeFiles(workspace.dir, {
      'leaf.pem': json.certificate as string,
      'bundle.pem': (json.trust_bundle as string[]).join(''),
    });
    expect(
      openssl([
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        files['bundle.pem']!,
        files['leaf.pem']!,
      ]),
    ).toBe(`${files['leaf.pem']}: OK\n`);
  });

  it('ok/base64url-der-csr-and-lifetime-capped-by-role', async () => {
    const der = Buffer.from(
      opensslCsr(workspace.dir, EC_P256).csrPem.replace(/-----[^-]+-----|\s/g, ''),
      'base64',
    );
    const { status, json } = await exchange({
      resource: 'svid',
      csr: der.toString('base64url'),
      duration_seconds: '86400',
    });
    expect(status).toBe(200);
    expect(json.expires_in).toBe(1800);
  });

  it.each([
    [
      'fail/csr-with-bad-signature',
      'svid',
      () => tamperedCsr(),
      400,
      {
        error: 'invalid_request',
        error_description: 'csr signature does not verify (proof of possession failed)',
      },
    ],
    [
      'fail/csr-garbage',
      'svid',
      () => 'hello',
      400,
      {
        error: 'invalid_request',
        error_description: 'csr is not a valid PKCS#10 certificate request (PEM or base64url DER)',
      },
    ],
    [
      'fail/role-without-x509-profile',
      'jwt-only',
      () => opensslCsr(workspace.dir, EC_P256).csrPem,
      400,
      {
        error: 'invalid_request',
        error_description: 'role jwt-only does not issue x509-svid credentials',
      },
    ],
  ])('%s', async (_name, resource, csr, status, body) => {
    const response = await exchange({ resource, csr: csr() });
    expect({ status: response.status, json: response.json }).toEqual({ status, json: body });
  });

  it('ok/trust-bundle-route', async () => {
    const issued = await exchange({
      resource: 'svid',
      csr: opensslCsr(workspace.dir, EC_P256).csrPem,
    });
    const response = await fetch(`${test.url}/v1/trust-bundle`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      x509_authorities: string;
      spiffe_bundle: { keys: Array<Record<string, unknown>>; spiffe_refresh_hint: number };
    };
    expect(body.x509_authorities).toBe((issued.json.trust_bundle as string[]).join(''));
    expect(body.spiffe_bundle.spiffe_refresh_hint).toBe(300);
    const uses = body.spiffe_bundle.keys.map((key) => key.use);
    expect(uses[0]).toBe('x509-svid');
    expect(uses.slice(1).length).toBeGreaterThan(0);
    expect(new Set(uses.slice(1))).toEqual(new Set(['jwt-svid']));
    expect(body.spiffe_bundle.keys[0]!.x5c).toEqual([
      new X509Certificate(body.x509_authorities).raw.toString('base64'),
    ]);
  });
});

function tamperedCsr(): string {
  const der = Buffer.from(
    opensslCsr(workspace.dir, EC_P256).csrPem.replace(/-----[^-]+-----|\s/g, ''),
    'base64',
  );
  der.writeUInt8(der.readUInt8(der.length - 3) ^ 0x01, der.length - 3);
  return der.toString('base64url');
}
