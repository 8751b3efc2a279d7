import { describe, expect, it } from 'vitest';
import { dnsNameProblem, spiffeIdProblem } from '../../../../src/issuers/x509/spiffe.js';

describe('spiffeIdProblem (trust domain example.org)', () => {
  it.each([
    ['ok/workload', 'spiffe://example.org/ns/prod/sa/orders', undefined],
    ['ok/allowed-characters', 'spiffe://example.org/a_b-c.d/E9', undefined],
    ['fail/other-scheme', 'https://example.org/ns/a', 'must start with spiffe://'],
    ['fail/uppercase-scheme', 'SPIFFE://example.org/ns/a', 'must start with spiffe://'],
    ['fail/other-trust-domain', 'spiffe://evil.org/ns/a', 'must be in trust domain example.org'],
    ['fail/uppercase-trust-domain', 'spiffe://Example.org/ns/a', 'has an invalid trust domain'],
    ['fail/port', 'spiffe://example.org:443/ns/a', 'has an invalid trust domain'],
    ['fail/userinfo', 'spiffe://user@example.org/ns/a', 'has an invalid trust domain'],
    ['fail/no-path', 'spiffe://example.org', 'must have a path'],
    ['fail/trailing-slash-only', 'spiffe://example.org/', 'must have a path'],
    ['fail/trailing-slash', 'spiffe://example.org/ns/a/', 'must not have empty path segments'],
    ['fail/empty-segment', 'spiffe://example.org/ns//a', 'must not have empty path segments'],
    ['fail/dot-segment', 'spiffe://example.org/ns/./a', 'must not have dot segments'],
    ['fail/dot-dot-segment', 'spiffe://example.org/ns/../a', 'must not have dot segments'],
    [
      'fail/query',
      'spiffe://example.org/ns/a?x=1',
      'has characters outside [A-Za-z0-9._-] in its path',
    ],
    [
      'fail/fragment',
      'spiffe://example.org/ns/a#x',
      'has characters outside [A-Za-z0-9._-] in its path',
    ],
    [
      'fail/percent-encoding',
      'spiffe://example.org/ns/%41',
      'has characters outside [A-Za-z0-9._-] in its path',
    ],
    ['fail/too-long', `spiffe://example.org/${'a'.repeat(2048)}`, 'is longer than 2048 bytes'],
  ])('%s', (_name, value, problem) => {
    expect(spiffeIdProblem(value, 'example.org')).toBe(problem);
  });
});

describe('dnsNameProblem', () => {
  it.each([
    ['ok/service', 'orders.prod.svc.cluster.local', undefined],
    ['ok/wildcard', '*.orders.example.com', undefined],
    ['fail/empty', '', 'must be 1 to 253 characters'],
    [
      'fail/uppercase',
      'Orders.example.com',
      'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters',
    ],
    [
      'fail/leading-hyphen',
      '-a.example.com',
      'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters',
    ],
    [
      'fail/empty-label',
      'a..example.com',
      'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters',
    ],
    [
      'fail/long-label',
      `${'a'.repeat(64)}.example.com`,
      'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters',
    ],
    ['fail/bare-wildcard', '*', 'must not be a bare wildcard'],
    ['fail/wildcard-on-tld', '*.com', 'wildcard must cover at least two labels'],
    [
      'fail/inner-wildcard',
      'a.*.example.com',
      'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters',
    ],
    [
      'fail/ip-like-with-space',
      '10.0.0.1 ',
      'must be lowercase letters, digits and hyphens in labels of 1 to 63 characters',
    ],
  ])('%s', (_name, value, problem) => {
    expect(dnsNameProblem(value)).toBe(problem);
  });
});
