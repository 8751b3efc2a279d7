import { z } from 'zod';
import { durationSchema } from '../config/index.js';
import { SIGNING_ALGORITHMS } from '../constants.js';

/**
 * The policy file format (docs/architecture.md, "External contract"; docs/policies.md). Objects
 * are strict so a misspelt field fails instead of silently weakening a policy. Operators and
 * condition keys are checked by the compiler (it knows their grammar and gives better messages).
 */

const API_VERSION = 'tessera.dev/v1';
/** The hard cap on any issued credential's lifetime: 12 h, as AWS caps role sessions. */
export const HARD_MAX_LIFETIME = 12 * 3600;

const scalar = z.union([z.string(), z.number(), z.boolean()]);
const conditionValues = z.union([scalar, z.array(scalar).min(1)]);
/** `{ Operator: { key: value | [values] } }`, or `{ Cel: expr | [exprs] }`. */
const conditionBlock = z
  .record(
    z.string(),
    z.union([z.record(z.string(), conditionValues), z.string(), z.array(z.string()).min(1)]),
  )
  .meta({
    description:
      'IAM condition operators (StringEquals, ForAnyValue:StringLike, StringEqualsIfExists, Null…) → { key: value(s) }; or Cel: expression(s)',
  });

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const principal = z.union([
  z.literal('*'),
  z.strictObject({
    Federated: stringOrList.meta({
      description:
        'A cluster name, its issuer URL, its issuer host+path, an AWS oidc-provider ARN, or *',
    }),
  }),
]);

const statementFields = {
  Sid: z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/, 'must contain only letters, digits, _ and -')
    .optional(),
  Principal: principal,
  Action: stringOrList.meta({ description: 'sts:TokenExchange or sts:AssumeRoleWithWebIdentity' }),
  Condition: conditionBlock.optional(),
};

const statement = z.strictObject({ ...statementFields, Effect: z.enum(['Allow', 'Deny']) });
const denyStatement = z.strictObject({ ...statementFields, Effect: z.literal('Deny') });

const policyDocument = <T extends z.ZodType>(stmt: T) =>
  z.strictObject({
    Version: z.enum(['2012-10-17', '2008-10-17']).optional(),
    Id: z.string().optional(),
    Statement: z.union([stmt, z.array(stmt).min(1)]),
  });

const metadata = z.strictObject({
  name: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/,
      'must be lowercase letters, digits, ., _ or -, at most 63',
    ),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
});

const claimTree: z.ZodType<unknown> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(claimTree),
    z.record(z.string(), claimTree),
  ]),
);

const issueSchema = z.strictObject({
  audiences: z.array(z.string().min(1)).min(1),
  algorithm: z.enum(SIGNING_ALGORITHMS).default('ES256'),
  maxLifetime: durationSchema.default(3600),
  defaultLifetime: durationSchema.optional(),
  subject: z.string().min(1).optional(),
  claims: z.record(z.string(), claimTree).optional(),
  scopes: z.array(z.string().min(1)).optional(),
  x509: z
    .strictObject({
      spiffeId: z.string().min(1),
      maxTtl: durationSchema.default(3600),
      dnsNames: z.array(z.string().min(1)).default([]),
    })
    .optional(),
});

export const roleFileSchema = z.strictObject({
  $schema: z.string().optional(),
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Role'),
  metadata,
  trustPolicy: policyDocument(statement),
  shadowTrustPolicy: policyDocument(statement).optional().meta({
    description: 'Evaluated on every request and logged when it disagrees; never enforced',
  }),
  issue: issueSchema,
});

export const guardrailFileSchema = z.strictObject({
  $schema: z.string().optional(),
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Guardrail'),
  metadata,
  policy: policyDocument(denyStatement).optional(),
  maxLifetime: durationSchema
    .optional()
    .meta({ description: 'Caps every role’s maxLifetime and x509 maxTtl' }),
});

const policyFileSchema = z.discriminatedUnion('kind', [roleFileSchema, guardrailFileSchema]);

export type RoleFile = z.output<typeof roleFileSchema>;
export type GuardrailFile = z.output<typeof guardrailFileSchema>;
export type PolicyDocument = RoleFile['trustPolicy'];
export type StatementInput = z.output<typeof statement>;

/** The JSON Schema of policy files, for editors (`policies/schema.json`). */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(policyFileSchema, {
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    $id: 'https://tessera.dev/schemas/policy-v1.json',
    title: 'Tessera trust-policy file (Role or Guardrail)',
    ...schema,
  };
}
