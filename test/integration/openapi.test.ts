import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv } from 'ajv';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
type Document = { paths: Record<string, Record<string, Operation>> };

let t: TestApp;
let spec: Document;
const ajv = new Ajv({ strict: false, allErrors: true });

beforeAll(async () => {
  t = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES) });
  spec = (await SwaggerParser.validate(
    resolve(import.meta.dirname, '../../openapi.yaml'),
  )) as unknown as Document;
});
afterAll(async () => {
  await t?.close();
});

/** Validates a real response against the schema the contract gives for its path, method and status. */
async function conforms(path: string, method: string, response: Response): Promise<void> {
  const operation = spec.paths[path]?.[method];
  expect(operation, `${method} ${path} is in openapi.yaml`).toBeDefined();
  const described = operation?.responses[String(response.status)];
  expect(described, `${method} ${path} documents status ${response.status}`).toBeDefined();
  const mediaType = (response.headers.get('content-type') ?? '').split(';')[0] as string;
  const schema = described?.content?.[mediaType]?.schema;
  expect(schema, `${method} ${path} ${response.status} documents ${mediaType}`).toBeDefined();
  const body: unknown =
    mediaType === 'application/json' ? await response.json() : await response.text();
  const validate = ajv.compile(schema as object);
  expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
}

const post = (body: string, contentType = 'application/x-www-form-urlencoded') =>
  fetch(`${t.url}/v1/token`, { method: 'POST', headers: { 'content-type': contentType }, body });
const form = (extra: Record<string, string>) =>
  exchangeForm({ grant_type: TOKEN_EXCHANGE, subject_token_type: JWT_TYPE, ...extra });

describe('the app matches openapi.yaml', () => {
  it('GET routes', async () => {
    for (const path of [
      '/.well-known/openid-configuration',
      '/.well-known/jwks.json',
      '/healthz',
      '/readyz',
      '/metrics',
    ]) {
      await conforms(path, 'get', await fetch(`${t.url}${path}`));
    }
  });

  it('GET /v1/trust-bundle: JSON and PEM', async () => {
    for (const init of [
      { path: '' },
      { path: '?format=pem' },
      { path: '', headers: { accept: 'application/x-pem-file' } },
    ]) {
      const response = await fetch(`${t.url}/v1/trust-bundle${init.path}`, {
        headers: init.headers ?? {},
      });
      expect(response.status).toBe(200);
      await conforms('/v1/trust-bundle', 'get', response);
    }
  });

  it('POST /v1/token: success and every error status', async () => {
    const subject = await t.devToken('orders', 'order-service');
    await conforms(
      '/v1/token',
      'post',
      await post(form({ subject_token: subject, resource: 'orders-reader', scope: 'orders.read' })),
    );
    await conforms(
      '/v1/token',
      'post',
      await post(form({ subject_token: subject, resource: 'nope' })),
    );
    await conforms(
      '/v1/token',
      'post',
      await post(
        form({ subject_token: await t.devToken('payments', 'x'), resource: 'orders-reader' }),
      ),
    );
    await conforms('/v1/token', 'post', await post(form({ subject_token: 'x'.repeat(70_000) })));
    await conforms('/v1/token', 'post', await post('grant_type=password'));
    await conforms('/v1/token', 'post', await post('{', 'application/json'));
  });
});
