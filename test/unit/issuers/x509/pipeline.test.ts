import { describe, expect, it } from 'vitest';
import { TesseraError } from '../../../../src/errors.js';
import type { VerifiedCsr } from '../../../../src/issuers/x509/csr.js';
import {
  buildLeafProfile,
  type LeafContext,
  type LeafModifier,
} from '../../../../src/issuers/x509/pipeline.js';

const NOW = 1_800_000_000;
const csr = (keyType: 'ec' | 'rsa') => ({ keyType }) as VerifiedCsr;
const context = (
  overrides: Partial<LeafContext['request']> = {},
  keyType: 'ec' | 'rsa' = 'ec',
  caNotAfter = NOW + 86_400,
): LeafContext => ({
  request: {
    csr: '',
    spiffeId: 'spiffe://example.org/ns/prod/sa/orders',
    dnsNames: ['orders.prod.svc'],
    ttlSeconds: 3600,
    ...overrides,
  },
  csr: csr(keyType),
  now: NOW,
  trustDomain: 'example.org',
  ca: { notBefore: NOW - 600, notAfter: caNotAfter },
});

const EC_PROFILE = {
  uris: ['spiffe://example.org/ns/prod/sa/orders'],
  dnsNames: ['orders.prod.svc'],
  notBefore: NOW - 30,
  notAfter: NOW + 3600,
  isCa: false,
  keyUsage: { digitalSignature: true, keyEncipherment: false },
  extKeyUsage: ['serverAuth', 'clientAuth'],
};

describe('buildLeafProfile', () => {
  it.each([
    ['ok/ec-template', context(), [], EC_PROFILE],
    [
      'ok/rsa-adds-key-encipherment',
      context({}, 'rsa'),
      [],
      { ...EC_PROFILE, keyUsage: { digitalSignature: true, keyEncipherment: true } },
    ],
    [
      'ok/duplicate-dns-names-collapse',
      context({ dnsNames: ['orders.prod.svc', 'orders.prod.svc'] }),
      [],
      EC_PROFILE,
    ],
    [
      'ok/lifetime-capped-by-ca',
      context({}, 'ec', NOW + 600),
      [],
      { ...EC_PROFILE, notAfter: NOW + 600 },
    ],
    ['ok/no-dns-names', context({ dnsNames: [] }), [], { ...EC_PROFILE, dnsNames: [] }],
    [
      'ok/enforcers-undo-a-hostile-modifier',
      context(),
      [
        (profile) => ({
          ...profile,
          uris: [...profile.uris, 'spiffe://example.org/admin'],
          dnsNames: [...profile.dnsNames, 'evil.example.com'],
          isCa: true,
          keyUsage: { digitalSignature: true, keyEncipherment: true },
          extKeyUsage: ['serverAuth'],
          notBefore: NOW - 86_400,
          notAfter: NOW + 10 * 86_400,
        }),
      ] satisfies LeafModifier[],
      EC_PROFILE,
    ],
    [
      'ok/modifier-may-shorten',
      context(),
      [(profile) => ({ ...profile, notAfter: NOW + 60 })] satisfies LeafModifier[],
      { ...EC_PROFILE, notAfter: NOW + 60 },
    ],
  ])('%s', (_name, leafContext, modifiers, expected) => {
    expect(buildLeafProfile(leafContext, { modifiers })).toEqual(expected);
  });

  it.each([
    [
      'fail/foreign-trust-domain',
      context({ spiffeId: 'spiffe://evil.org/ns/a' }),
      'invalid_request',
      'invalid_spiffe_id',
      "the role's x509.spiffeId does not render to a valid SPIFFE ID: it must be in trust domain example.org",
    ],
    [
      'fail/spiffe-id-without-path',
      context({ spiffeId: 'spiffe://example.org' }),
      'invalid_request',
      'invalid_spiffe_id',
      "the role's x509.spiffeId does not render to a valid SPIFFE ID: it must have a path",
    ],
    [
      'fail/bad-dns-name',
      context({ dnsNames: ['Bad_Name'] }),
      'invalid_request',
      'invalid_dns_name',
      "the role's x509.dnsNames do not render to valid DNS names: one must be lowercase letters, digits and hyphens in labels of 1 to 63 characters",
    ],
    [
      'fail/zero-ttl',
      context({ ttlSeconds: 0 }),
      'invalid_request',
      'invalid_duration',
      'x509-svid lifetime must be a positive whole number of seconds',
    ],
    [
      'fail/fractional-ttl',
      context({ ttlSeconds: 1.5 }),
      'invalid_request',
      'invalid_duration',
      'x509-svid lifetime must be a positive whole number of seconds',
    ],
    [
      'fail/ca-expired',
      context({}, 'ec', NOW),
      'temporarily_unavailable',
      'ca_expired',
      'the X.509 CA certificate has expired',
    ],
  ])('%s', (_name, leafContext, code, reason, description) => {
    let caught: unknown;
    try {
      buildLeafProfile(leafContext);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TesseraError);
    const error = caught as TesseraError;
    expect({ code: error.code, reason: error.reason, description: error.description }).toEqual({
      code,
      reason,
      description,
    });
  });

  it('fail/validator-option-refuses', () => {
    const refuse = () => {
      throw new TesseraError('invalid_request', 400, 'refused by policy', {
        reason: 'invalid_spiffe_id',
      });
    };
    expect(() => buildLeafProfile(context(), { validators: [refuse] })).toThrow(
      'refused by policy',
    );
  });

  it('ok/result-is-frozen', () => {
    expect(Object.isFrozen(buildLeafProfile(context()))).toBe(true);
  });
});
