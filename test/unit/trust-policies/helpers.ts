import {
  buildPolicySet,
  compilePolicy,
  type CompiledFile,
} from '../../../src/trust-policies/index.js';
import type { EvaluationInput, PolicySet } from '../../../src/trust-policies/types.js';
import type { WorkloadIdentity } from '../../../src/verifiers/types.js';

export const ISSUER = 'https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123';
export const HOST_PATH = 'oidc.eks.eu-west-1.amazonaws.com/id/ABC123';
/** 2024-01-01T00:00:00Z */
export const NOW = 1704067200;

export function identity(
  overrides: Partial<WorkloadIdentity> = {},
  claims: Record<string, unknown> = {},
): WorkloadIdentity {
  const namespace = overrides.namespace ?? 'prod';
  const sa = overrides.serviceAccount?.name ?? 'api';
  const base: WorkloadIdentity = {
    cluster: 'prod',
    iss: ISSUER,
    sub: `system:serviceaccount:${namespace}:${sa}`,
    aud: ['sts.example.com'],
    namespace,
    serviceAccount: { name: sa, uid: 'sa-uid-1' },
    pod: { name: 'api-7d9f', uid: 'pod-uid-1' },
    node: { name: 'node-a' },
    claims: {},
    verifiedBy: 'jwks',
    ...overrides,
  };
  base.claims = {
    iss: base.iss,
    sub: base.sub,
    aud: base.aud,
    iat: NOW - 60,
    exp: NOW + 3600,
    'kubernetes.io': {
      namespace: base.namespace,
      serviceaccount: base.serviceAccount,
      pod: base.pod,
    },
    ...claims,
  };
  return base;
}

export function input(
  id: WorkloadIdentity = identity(),
  request: Partial<EvaluationInput['request']> = {},
  now = NOW,
): EvaluationInput {
  return {
    identity: id,
    request: {
      audience: ['vault'],
      scope: [],
      tokenType: 'urn:ietf:params:oauth:token-type:jwt',
      ...request,
    },
    now,
  };
}

export function roleText(
  name: string,
  statements: unknown[],
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    apiVersion: 'tessera.dev/v1',
    kind: 'Role',
    metadata: { name },
    trustPolicy: { Version: '2012-10-17', Statement: statements },
    issue: { audiences: ['vault'], maxLifetime: '1h' },
    ...extra,
  });
}

export function guardrailText(name: string, statements: unknown[], maxLifetime?: string): string {
  return JSON.stringify({
    apiVersion: 'tessera.dev/v1',
    kind: 'Guardrail',
    metadata: { name },
    policy: { Statement: statements },
    ...(maxLifetime ? { maxLifetime } : {}),
  });
}

export type ValidFile = Extract<CompiledFile, { kind: 'Role' | 'Guardrail' }>;

/** Compile texts (file names from their index) into a set; throws on any error so a bad fixture fails loudly. */
export function setOf(
  texts: string[],
  options: Parameters<typeof buildPolicySet>[1] = {},
): PolicySet {
  const files = texts.map((text, index) => compilePolicy(`mem${index}.json`, text));
  const errors = files.flatMap((file) =>
    file.problems.filter((problem) => problem.severity === 'error'),
  );
  if (errors.length > 0) throw new Error(JSON.stringify(errors));
  return buildPolicySet(files as ValidFile[], options);
}

export const allow = (
  condition?: Record<string, unknown>,
  principal: unknown = { Federated: 'prod' },
  sid = 'A',
) => ({
  Sid: sid,
  Effect: 'Allow',
  Principal: principal,
  Action: 'sts:TokenExchange',
  ...(condition ? { Condition: condition } : {}),
});

export const deny = (condition?: Record<string, unknown>, sid = 'D') => ({
  Sid: sid,
  Effect: 'Deny',
  Principal: '*',
  Action: 'sts:TokenExchange',
  ...(condition ? { Condition: condition } : {}),
});
