import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_REASONS, invalidRequest, slowDown } from '../../src/errors.js';

const auditSchema = JSON.parse(
  readFileSync(new URL('../../docs/audit.schema.json', import.meta.url), 'utf8'),
) as {
  properties: { reason: { enum: string[] } };
};

describe('error reasons', () => {
  it('ok/each-reason-is-listed-once-in-snake-case', () => {
    expect(new Set(ERROR_REASONS).size).toBe(ERROR_REASONS.length);
    for (const reason of ERROR_REASONS) expect(reason).toMatch(/^[a-z]+(_[a-z0-9]+)*$/);
  });

  it('ok/the-audit-schema-accepts-exactly-the-enumerated-reasons', () => {
    expect([...auditSchema.properties.reason.enum].sort()).toEqual([...ERROR_REASONS].sort());
  });

  it('ok/an-error-carries-its-reason-apart-from-its-description', () => {
    const error = invalidRequest('subject_token is expired', {
      reason: 'token_expired',
      detail: { exp: 1 },
    });
    expect({
      code: error.code,
      status: error.status,
      reason: error.reason,
      description: error.description,
    }).toEqual({
      code: 'invalid_request',
      status: 400,
      reason: 'token_expired',
      description: 'subject_token is expired',
    });
    expect(slowDown(2.2, { reason: 'rate_limited' }).headers).toEqual({ 'Retry-After': '3' });
  });
});
