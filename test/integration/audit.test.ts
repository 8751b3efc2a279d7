import { readFileSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/index.js';
import { loadPolicySet } from '../../src/trust-policies/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';
import { EC_P256, opensslCsr, tempDir } from '../support/x509.js';

const X509_TYPE = 'urn:tessera:params:oauth:token-type:x509-svid';
const schema = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../docs/audit.schema.json'), 'utf8'),
) as object;
const ajv = new Ajv2020({ allErrors: true });
addFormats.default(ajv);
const validate = ajv.compile(schema);

type Event = Record<string, unknown>;

const POLICIES = {
  ...ENDPOINT_ROLES,
  'guarded.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: guarded }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: AnyDevWorkload
      Effect: Allow
      Principal: { Federated: dev }
      Action: sts:TokenExchange
    - Sid: NotKubeSystem
      Effect: Deny
      Principal: { Federated: dev }
      Action: sts:TokenExchange
      Condition:
        StringEquals: { "kubernetes.io/namespace": kube-system }
issue:
  audiences: [guarded-aud]
  algorithm: ES256
  x509:
    spiffeId: "spiffe://example.org/ns/{{namespace}}/sa/{{serviceAccount}}"
    maxTtl: 30m
`,
};

let t: TestApp;
let policiesDir: string;
beforeAll(async () => {
  policiesDir = writePolicies(POLICIES);
  t = await startTestApp({ policies: policiesDir, rateLimit: { perSecond: 0.001, burst: 1000 } });
});
afterAll(async () => {
  await t?.close();
});

/** The audit events logged so far (the log stream, the default destination). */
const events = (): Event[] =>
  t.logs.lines
    .map((line) => JSON.parse(line) as Event)
    .filter((line) => line.event === 'token_exchange');

async function post(
  body: string,
  headers: Record<string, string> = {},
): Promise<{ response: Response; json: Record<string, unknown>; event: Event }> {
  const before = events().length;
  const response = await fetch(`${t.url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  const json = (await response.json()) as Record<string, unknown>;
  const after = events();
  // Exactly one event per request, whatever its outcome.
  expect(after.length).toBe(before + 1);
  const event = after.at(-1) as Event;
  expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
  expect(event.requestId).toBe(response.headers.get('x-request-id'));
  return { response, json, event };
}

const form = (subjectToken: string, extra: Record<string, string> = {}) =>
  exchangeForm({
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: JWT_TYPE,
    ...extra,
  });

describe('audit events of POST /v1/token', () => {
  it('ok/allow-names-identity-role-decision-and-issued-credential-digest', async () => {
    const { response, json, event } = await post(
      form(await t.devToken('orders', 'order-service'), { resource: 'orders-reader' }),
      {
        'x-request-id': 'req-123_abc=',
        'user-agent': 'tessera-test/1.0',
      },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('req-123_abc=');
    const token = json.access_token as string;
    const claims = JSON.parse(
      Buffer.from(token.split('.')[1] as string, 'base64url').toString(),
    ) as { jti: string; exp: number };
    const { createHash } = await import('node:crypto');
    expect(event).toMatchObject({
      event: 'token_exchange',
      requestId: 'req-123_abc=',
      outcome: 'allow',
      status: 200,
      role: 'orders-reader',
      cluster: 'dev',
      iss: 'https://dev-cluster.tessera.local',
      sub: 'system:serviceaccount:orders:order-service',
      namespace: 'orders',
      serviceAccount: 'order-service',
      decidedBy: 'OrdersNamespace',
      requestedTokenType: JWT_TYPE,
      audience: ['https://vault.example.com'],
      jti: claims.jti,
      exp: claims.exp,
      credentialSha256: createHash('sha256').update(token).digest('hex'),
      clientAddress: '127.0.0.1',
      userAgent: 'tessera-test/1.0',
      policyVersion: loadPolicySet(policiesDir).version,
    });
    expect(event).not.toHaveProperty('error');
    expect(event).not.toHaveProperty('clientCertSubject');
    expect(typeof event.durationMs).toBe('number');
  });

  it('ok/x509-allow-carries-the-certificate-digest-and-expiry', async () => {
    const temp = tempDir();
    const dir = temp.dir;
    try {
      const { csrPem, keyPem } = opensslCsr(dir, EC_P256);
      const { response, json, event } = await post(
        form(await t.devToken('web', 'frontend'), {
          resource: 'guarded',
          requested_token_type: X509_TYPE,
          csr: csrPem,
        }),
      );
      expect(response.status).toBe(200);
      const { createHash } = await import('node:crypto');
      expect(event).toMatchObject({
        outcome: 'allow',
        role: 'guarded',
        requestedTokenType: X509_TYPE,
        decidedBy: 'AnyDevWorkload',
      });
      expect(event.credentialSha256).toBe(
        createHash('sha256')
          .update(json.access_token as string)
          .digest('hex'),
      );
      expect(event.exp).toBeGreaterThan(Date.now() / 1000);
      // Neither the CSR nor anything of the private key is in any log line.
      const base64Lines = (pem: string) =>
        pem.split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
      for (const line of [...base64Lines(csrPem), ...base64Lines(keyPem)])
        expect(t.logs.text()).not.toContain(line);
    } finally {
      temp.cleanup();
    }
  });

  it('deny/explicit-deny-names-the-statement', async () => {
    const { response, event } = await post(
      form(await t.devToken('kube-system', 'admin'), { resource: 'guarded' }),
    );
    expect(response.status).toBe(403);
    expect(event).toMatchObject({
      outcome: 'deny',
      error: 'access_denied',
      reason: 'policy_denied',
      status: 403,
      role: 'guarded',
      decidedBy: 'NotKubeSystem',
      namespace: 'kube-system',
    });
    expect(event).not.toHaveProperty('failedCondition');
    expect(event).not.toHaveProperty('jti');
  });

  it('deny/no-allow-matched-names-the-failing-condition', async () => {
    const { event } = await post(
      form(await t.devToken('payments', 'order-x'), { resource: 'orders-reader' }),
    );
    expect(event).toMatchObject({
      outcome: 'deny',
      status: 403,
      role: 'orders-reader',
      failedCondition: 'OrdersNamespace: StringEquals kubernetes.io/namespace',
    });
    expect(event).not.toHaveProperty('decidedBy');
  });

  const token = async () => await t.devToken('orders', 'order-service');
  const tamper = (jwt: string) => `${jwt.slice(0, -4)}${jwt.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  // The subject token is verified before anything about the role is looked at, so a refusal
  // after verification names the workload, and one before it names neither workload nor role.
  const refusals: Array<{
    name: string;
    body: () => string | Promise<string>;
    status: number;
    error: string;
    reason: string;
    has?: Event;
    verified?: boolean;
  }> = [
    {
      name: 'error/bad-request',
      body: () => exchangeForm({ grant_type: TOKEN_EXCHANGE, subject_token_type: JWT_TYPE }),
      status: 400,
      error: 'invalid_request',
      reason: 'missing_parameter',
    },
    {
      name: 'error/unsupported-grant',
      body: () =>
        exchangeForm({ grant_type: 'password', subject_token: 'x', subject_token_type: JWT_TYPE }),
      status: 400,
      error: 'unsupported_grant_type',
      reason: 'unsupported_grant_type',
    },
    {
      name: 'error/unknown-role',
      body: async () => form(await token(), { resource: 'no-such-role' }),
      status: 400,
      error: 'invalid_target',
      reason: 'unknown_role',
      has: { requestedTokenType: JWT_TYPE },
      verified: true,
    },
    {
      name: 'error/bad-signature',
      body: async () => form(tamper(await token()), { resource: 'orders-reader' }),
      status: 400,
      error: 'invalid_request',
      reason: 'bad_signature',
    },
    {
      name: 'error/scope-not-allowed',
      body: async () => form(await token(), { resource: 'orders-reader', scope: 'orders.admin' }),
      status: 400,
      error: 'invalid_scope',
      reason: 'scope_not_allowed',
      has: { role: 'orders-reader' },
      verified: true,
    },
    {
      name: 'error/body-too-large',
      body: () => form('x'.repeat(70 * 1024)),
      status: 413,
      error: 'invalid_request',
      reason: 'body_too_large',
    },
  ];
  it.each(refusals)(
    '$name: refused before the policy, still one event',
    async ({ body, status, error, reason, has, verified }) => {
      const { response, event } = await post(await body());
      expect(response.status).toBe(status);
      expect(event).toMatchObject({
        outcome: 'error',
        status,
        error,
        reason,
        clientAddress: '127.0.0.1',
        ...has,
      });
      if (verified)
        expect(event).toMatchObject({
          sub: 'system:serviceaccount:orders:order-service',
          namespace: 'orders',
          serviceAccount: 'order-service',
        });
      else {
        expect(event).not.toHaveProperty('sub');
        expect(event).not.toHaveProperty('role');
      }
    },
  );

  it('request-id/unsafe-or-too-long-ids-are-replaced-by-a-generated-one', async () => {
    for (const sent of ['a'.repeat(129), 'evil id\\n', '"quoted"', '']) {
      const { response, event } = await post(
        form(await token(), { resource: 'orders-reader' }),
        sent ? { 'x-request-id': sent } : {},
      );
      const echoed = response.headers.get('x-request-id');
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
      expect(event.requestId).toBe(echoed);
    }
    expect(
      (await post(form(await token()), { 'x-request-id': 'a'.repeat(128) })).event.requestId,
    ).toBe('a'.repeat(128));
  });

  it('request-id/echoed-on-every-response', async () => {
    for (const path of [
      '/healthz',
      '/readyz',
      '/metrics',
      '/.well-known/jwks.json',
      '/no-such-route',
    ]) {
      const response = await fetch(`${t.url}${path}`, { headers: { 'x-request-id': 'probe-1' } });
      expect(response.headers.get('x-request-id'), path).toBe('probe-1');
      expect((await fetch(`${t.url}${path}`)).headers.get('x-request-id'), path).toMatch(
        /^[0-9a-f-]{36}$/,
      );
    }
  });

  it('policy-version/readyz-shows-the-version-in-every-event', async () => {
    const ready = (await (await fetch(`${t.url}/readyz`)).json()) as {
      checks: { policies: { version: string } };
    };
    expect(ready.checks.policies.version).toBe(loadPolicySet(policiesDir).version);
    expect(new Set(events().map((event) => event.policyVersion))).toEqual(
      new Set([ready.checks.policies.version]),
    );
  });

  it('secrets/no-issued-or-subject-token-in-any-log-line', async () => {
    const subject = await token();
    const { json } = await post(form(subject, { resource: 'orders-reader' }));
    const text = t.logs.text();
    for (const jwt of [subject, json.access_token as string]) {
      expect(text).not.toContain(jwt);
      expect(text).not.toContain(jwt.split('.')[2]);
    }
  });
});

describe('rate-limited requests', () => {
  let limited: TestApp;
  beforeAll(async () => {
    limited = await startTestApp({
      policies: writePolicies(ENDPOINT_ROLES),
      rateLimit: { perSecond: 0.001, burst: 1 },
    });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it('error/rate-limited: slow_down is audited too', async () => {
    const body = exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token: await limited.devToken('orders', 'order-service'),
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
    });
    const send = () =>
      fetch(`${limited.url}/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(429);
    const audited = limited.logs.lines
      .map((line) => JSON.parse(line) as Event)
      .filter((line) => line.event === 'token_exchange');
    expect(audited.map((event) => [event.outcome, event.status, event.error])).toEqual([
      ['allow', 200, undefined],
      ['error', 429, 'slow_down'],
    ]);
    for (const event of audited)
      expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
  });
});

describe('audit in the log stream', () => {
  it('ok/logging-at-warn-keeps-every-event-and-drops-the-info-lines', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    });
    const quiet = await startTestApp(
      { policies: writePolicies(ENDPOINT_ROLES), logging: { level: 'warn' } },
      { logger: createLogger({ level: 'warn', destination }) },
    );
    try {
      const subject = await quiet.devToken('orders', 'order-service');
      for (const resource of ['orders-reader', 'billing', 'nope'])
        await fetch(`${quiet.url}/v1/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form(subject, { resource }),
        });
      const parsed = lines.map((line) => JSON.parse(line) as Event);
      const audited = parsed.filter((line) => line.event === 'token_exchange');
      expect(audited.map((event) => event.outcome)).toEqual(['allow', 'deny', 'error']);
      for (const event of audited)
        expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
      // Nothing else at info: the level still thins out the log itself.
      expect(parsed.filter((line) => line.event !== 'token_exchange' && line.level === 30)).toEqual(
        [],
      );
    } finally {
      await quiet.close();
    }
  });
});

describe('audit: { file }', () => {
  it('ok/events-go-to-their-own-file-one-json-object-a-line-valid-against-the-schema', async () => {
    const temp = tempDir('tessera-audit-');
    const dir = temp.dir;
    const file = join(dir, 'audit', 'events.log');
    const own = await startTestApp({ policies: writePolicies(ENDPOINT_ROLES), audit: { file } });
    try {
      const subject = await own.devToken('orders', 'order-service');
      const send = (resource: string) =>
        fetch(`${own.url}/v1/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form(subject, { resource }),
        });
      const issued = (await (await send('orders-reader')).json()) as { access_token: string };
      expect((await send('billing')).status).toBe(403);
      expect((await send('nope')).status).toBe(400);
      expect(own.logs.lines.filter((line) => line.includes('"token_exchange"'))).toEqual([]);
      // Written before each answer left: all three are in the file while the broker still runs.
      expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toHaveLength(3);
      await own.app.close();
      const text = readFileSync(file, 'utf8');
      expect(text).not.toContain(issued.access_token.split('.')[2]);
      expect(text).not.toContain(subject.split('.')[2]);
      const lines = text.trimEnd().split('\n');
      expect(lines).toHaveLength(3);
      const parsed = lines.map((line) => JSON.parse(line) as Event);
      for (const event of parsed)
        expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
      expect(parsed.map((event) => event.outcome)).toEqual(['allow', 'deny', 'error']);
      expect(parsed[0]).not.toHaveProperty('level');
    } finally {
      await own.close().catch(() => undefined);
      temp.cleanup();
    }
  });

  it('error/a-file-that-refuses-writes: exchanges are answered and every lost event is counted', async () => {
    // /dev/full opens like any file and fails every write with ENOSPC: a full disk.
    const full = await startTestApp({
      policies: writePolicies(ENDPOINT_ROLES),
      audit: { file: '/dev/full' },
    });
    try {
      const subject = await full.devToken('orders', 'order-service');
      const statuses: number[] = [];
      for (const resource of ['orders-reader', 'billing', 'nope'])
        statuses.push(
          (
            await fetch(`${full.url}/v1/token`, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              body: form(subject, { resource }),
            })
          ).status,
        );
      expect(statuses).toEqual([200, 403, 400]);
      const metrics = await (await fetch(`${full.url}/metrics`)).text();
      expect(metrics).toMatch(/^tessera_audit_write_failures_total 3$/m);
      // One line for the run of failures, not one per event.
      const failures = full.logs.lines.filter((line) =>
        line.includes('audit events are being lost'),
      );
      expect(failures).toHaveLength(1);
      expect(failures[0]).toContain('ENOSPC');
    } finally {
      await full.close();
    }
  });

  it('error/a-file-that-cannot-be-opened-stops-the-start-with-the-reason', async () => {
    const temp = tempDir('tessera-audit-');
    const notADirectory = join(temp.dir, 'plain-file');
    writeFileSync(notADirectory, '');
    try {
      await expect(
        startTestApp({
          policies: writePolicies(ENDPOINT_ROLES),
          audit: { file: join(notADirectory, 'audit', 'events.log') },
        }),
      ).rejects.toThrow(/ENOTDIR/);
    } finally {
      temp.cleanup();
    }
  });

  it('error/a-directory-that-cannot-be-made-stops-the-start-at-once', async () => {
    // procfs refuses a new directory with ENOENT, on which a recursive mkdir retries forever.
    await expect(
      startTestApp({
        policies: writePolicies(ENDPOINT_ROLES),
        audit: { file: `/proc/tessera-audit-${process.pid}/events.log` },
      }),
    ).rejects.toThrow(/ENOENT/);
  });
});
