import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/index.js';
import { isoClock } from '../../../src/observability/logger.js';

/** What a log line shows of secrets: '[redacted]' at the top level and one level down, nothing else touched. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ destination }), lines };
}

describe('observability: logger redaction', () => {
  it.each([
    [
      'fail/top-level-token',
      { subject_token: 'eyJ.secret.x', role: 'r' },
      { subject_token: '[redacted]', role: 'r' },
    ],
    [
      'fail/nested-token',
      { request: { actor_token: 'eyJ.secret.y', audience: 'a' } },
      { request: { actor_token: '[redacted]', audience: 'a' } },
    ],
    [
      'fail/nested-pin-and-password',
      { hsm: { pin: '1234', password: 'p', slot: 1 } },
      { hsm: { pin: '[redacted]', password: '[redacted]', slot: 1 } },
    ],
    [
      'fail/request-authorization-header',
      { req: { headers: { authorization: 'Bearer x', accept: '*/*' } } },
      { req: { headers: { authorization: '[redacted]', accept: '*/*' } } },
    ],
    [
      'fail/nested-private-key',
      { key: { privateKey: '-----BEGIN PRIVATE KEY-----', kid: 'k' } },
      { key: { privateKey: '[redacted]', kid: 'k' } },
    ],
    [
      'ok/identities-untouched',
      { sub: 'system:serviceaccount:a:b', jti: 'j', aud: ['x'], nested: { kid: 'k' } },
      { sub: 'system:serviceaccount:a:b', jti: 'j', aud: ['x'], nested: { kid: 'k' } },
    ],
  ])('%s', (_name, object, expected) => {
    const { logger, lines } = capture();
    const before = JSON.stringify(object);
    logger.info(object, 'message');
    expect(lines[0]).toMatchObject(expected);
    expect(JSON.stringify(lines[0])).not.toMatch(/eyJ\.secret|1234|BEGIN PRIVATE|Bearer x/);
    // The caller's object is never changed.
    expect(JSON.stringify(object)).toBe(before);
  });

  it('fail/secret-member-of-an-error-is-redacted-and-the-error-still-serialises', () => {
    const { logger, lines } = capture();
    const err = Object.assign(new Error('boom'), { token: 'eyJ.secret.z' });
    logger.error({ err }, 'failed');
    expect(lines[0]?.err).toMatchObject({ type: 'Error', message: 'boom', token: '[redacted]' });
    expect(err.token).toBe('eyJ.secret.z');
  });

  it('fail/child-bindings-are-redacted', () => {
    const { logger, lines } = capture();
    logger.child({ token: 'eyJ.secret.w' }).info('x');
    expect(lines[0]?.token).toBe('[redacted]');
  });
});

describe('observability: log line time', () => {
  it('ok/iso-clock-writes-what-toISOString-writes-across-seconds-and-odd-inputs', () => {
    const iso = isoClock();
    const start = Date.UTC(2026, 10, 30, 23, 59, 58, 990);
    const times = [
      ...Array.from({ length: 2500 }, (_, index) => start + index),
      start - 1,
      0,
      5,
      1.5,
      -1,
      8.64e15,
    ];
    for (const time of times) expect(iso(time)).toBe(new Date(time).toISOString());
  });

  it('ok/lines-carry-an-iso-time', () => {
    const { logger, lines } = capture();
    const before = Date.now();
    logger.info({ role: 'r' }, 'hello');
    const time = Date.parse(String(lines[0]?.time));
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });
});
