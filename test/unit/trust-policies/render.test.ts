import { describe, expect, it } from 'vitest';
import { TesseraError } from '../../../src/errors.js';
import {
  compilePolicy,
  renderIssueRequest,
  roleIssues,
  type CompiledRole,
  type RenderInput,
} from '../../../src/trust-policies/index.js';
import { allow, identity, roleText } from './helpers.js';

/** A role compiled from its file text, with `issue` replaced by `issue`. */
function role(issue: Record<string, unknown>): CompiledRole {
  const compiled = compilePolicy(
    'orders.json',
    roleText('orders', [allow()], { issue: { audiences: ['vault'], maxLifetime: '1h', ...issue } }),
  );
  if (compiled.kind !== 'Role' || compiled.problems.length > 0)
    throw new Error(`fixture does not compile: ${JSON.stringify(compiled.problems)}`);
  return compiled.role;
}
const input = (overrides: Partial<RenderInput> = {}): RenderInput => ({
  identity: identity(),
  audiences: ['vault'],
  scope: [],
  ...overrides,
});
const SVID = {
  spiffeId: 'spiffe://example.org/ns/{{namespace}}/sa/{{serviceAccount}}',
  maxTtl: '30m',
  dnsNames: ['{{serviceAccount}}.{{namespace}}.svc', '{{claims.missing}}'],
};

function refusal(render: () => unknown): { code: string; reason?: string } {
  try {
    render();
  } catch (error) {
    if (error instanceof TesseraError)
      return { code: error.code, ...(error.reason && { reason: error.reason }) };
    throw error;
  }
  throw new Error('rendered without a refusal');
}

describe('renderIssueRequest: jwt', () => {
  it('ok/templates-rendered-and-lifetime-capped', () => {
    const rendered = renderIssueRequest(
      'jwt',
      role({ subject: 'ns:{{namespace}}', claims: { team: '{{serviceAccount}}' } }),
      input({ durationSeconds: 86_400, scope: ['read'] }),
    );
    expect(rendered).toEqual({
      algorithm: 'ES256',
      subject: 'ns:prod',
      audiences: ['vault'],
      lifetimeSeconds: 3600,
      claims: { team: 'api' },
      scope: ['read'],
      kubernetes: {
        namespace: 'prod',
        serviceaccount: { name: 'api', uid: 'sa-uid-1' },
        pod: { name: 'api-7d9f', uid: 'pod-uid-1' },
      },
      tessera: { role: 'orders', cluster: 'prod' },
    });
  });

  it('fail/reserved-claims-dropped-even-when-a-role-renders-them', () => {
    const compiled = role({});
    const forged: CompiledRole = {
      ...compiled,
      issue: {
        ...compiled.issue,
        claims: () => ({ sub: 'root', cnf: { jkt: 'x' }, azp: 'x', act: {}, team: 'orders' }),
      },
    };
    expect(renderIssueRequest('jwt', forged, input()).claims).toEqual({ team: 'orders' });
  });

  it('ok/default-lifetime-subject-and-actor', () => {
    const actor = identity({
      namespace: 'platform',
      serviceAccount: { name: 'gateway', uid: 'g' },
    });
    const rendered = renderIssueRequest('jwt', role({ defaultLifetime: '15m' }), input({ actor }));
    expect([rendered.subject, rendered.lifetimeSeconds, rendered.actor]).toEqual([
      'system:serviceaccount:prod:api',
      900,
      { sub: actor.sub, iss: actor.iss },
    ]);
  });

  it('fail/subject-too-long-for-the-audience', () => {
    const long = identity({ sub: `system:serviceaccount:prod:${'a'.repeat(300)}` });
    expect(
      refusal(() =>
        renderIssueRequest(
          'jwt',
          role({ audiences: ['sts.amazonaws.com'] }),
          input({ identity: long, audiences: ['sts.amazonaws.com'] }),
        ),
      ),
    ).toEqual({
      code: 'invalid_request',
      reason: 'subject_too_long',
    });
  });
});

describe('renderIssueRequest: x509-svid', () => {
  it('ok/spiffe-id-and-dns-names-rendered-ttl-capped', () => {
    expect(
      renderIssueRequest(
        'x509-svid',
        role({ x509: SVID }),
        input({ csr: 'CSR', durationSeconds: 86_400 }),
      ),
    ).toEqual({
      csr: 'CSR',
      spiffeId: 'spiffe://example.org/ns/prod/sa/api',
      dnsNames: ['api.prod.svc'],
      ttlSeconds: 1800,
    });
  });

  it.each([
    [
      'fail/role-without-x509',
      () => renderIssueRequest('x509-svid', role({}), input({ csr: 'CSR' })),
      'role_does_not_issue',
    ],
    [
      'fail/no-csr',
      () => renderIssueRequest('x509-svid', role({ x509: SVID }), input()),
      'csr_required',
    ],
    [
      'fail/claim-adds-path-segments',
      () =>
        renderIssueRequest(
          'x509-svid',
          role({ x509: { ...SVID, spiffeId: 'spiffe://example.org/{{claims.team}}' } }),
          input({ csr: 'CSR', identity: identity({}, { team: 'a/../admin' }) }),
        ),
      'template_value_unsafe',
    ],
  ])('%s', (_name, render, reason) => {
    expect(refusal(render)).toEqual({ code: 'invalid_request', reason });
  });
});

describe('roleIssues', () => {
  it('ok/every-role-issues-jwts-and-x509-needs-its-section', () => {
    expect([
      roleIssues(role({}), 'jwt'),
      roleIssues(role({}), 'x509-svid'),
      roleIssues(role({ x509: SVID }), 'x509-svid'),
    ]).toEqual([true, false, true]);
  });
});
