import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A policies directory written for one test, one role a file, in the format of docs/architecture.md ("External contract"). */
export function writePolicies(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-policies-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

/** Roles the endpoint tests rely on: all trust the dev cluster. */
export const ENDPOINT_ROLES: Record<string, string> = {
  'orders.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: orders-reader }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: OrdersNamespace
      Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition:
        StringEquals:
          "kubernetes.io/namespace": orders
        StringLike:
          "kubernetes.io/serviceaccount/name": "order-*"
issue:
  audiences: [https://vault.example.com, orders-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
  scopes: [orders.read, orders.write]
  claims: { team: orders, ns: "{{namespace}}" }
`,
  'billing.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: billing }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:AssumeRoleWithWebIdentity
      Condition:
        StringEquals: { "kubernetes.io/namespace": billing }
issue:
  audiences: [sts.amazonaws.com, shared-aud]
  algorithm: RS256
  maxLifetime: 30m
  defaultLifetime: 10m
  subject: "system:serviceaccount:{{namespace}}:{{serviceAccount}}@{{cluster}}"
`,
  'pss.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: pss-only }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
issue:
  audiences: [pss-aud]
  algorithm: PS256
`,
  'shared.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: shared }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
issue:
  audiences: [shared-aud]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
`,
};
