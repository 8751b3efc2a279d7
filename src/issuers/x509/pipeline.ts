import { invalidRequest, temporarilyUnavailable } from '../../errors.js';
import type { SvidRequest } from '../types.js';
import type { CsrKeyType, VerifiedCsr } from './csr.js';
import { dnsNameProblem, spiffeIdProblem } from './spiffe.js';

/**
 * The X.509-SVID profile as an ordered pipeline (after the CSR checks of csr.ts):
 * template → modifiers → validators → enforcers. Modifiers and validators are options;
 * the enforcers are the SPIFFE leaf rules and always run last, so no option, template or
 * future modifier can produce a CA certificate, a second URI SAN, a foreign DNS name, or a
 * leaf that outlives its request or its CA.
 */

export type ExtendedKeyUsage = 'serverAuth' | 'clientAuth';

/** What the leaf will say; every time is Unix seconds. */
export interface LeafProfile {
  uris: string[];
  dnsNames: string[];
  notBefore: number;
  notAfter: number;
  isCa: boolean;
  keyUsage: { digitalSignature: boolean; keyEncipherment: boolean };
  extKeyUsage: ExtendedKeyUsage[];
}

export interface LeafContext {
  request: SvidRequest;
  csr: VerifiedCsr;
  /** Unix seconds. */
  now: number;
  trustDomain: string;
  ca: { notBefore: number; notAfter: number };
}

export type LeafModifier = (profile: LeafProfile, context: LeafContext) => LeafProfile;
/** Throws a TesseraError to refuse. */
export type LeafValidator = (profile: LeafProfile, context: LeafContext) => void;

/** notBefore is backdated this much for clock skew between Tessera and relying parties. */
const BACKDATE_SECONDS = 30;

const keyUsageFor = (keyType: CsrKeyType) => ({
  digitalSignature: true,
  keyEncipherment: keyType === 'rsa',
});

function leafTemplate(context: LeafContext): LeafProfile {
  const { request, csr, now } = context;
  return {
    uris: [request.spiffeId],
    dnsNames: [...new Set(request.dnsNames)],
    notBefore: now - BACKDATE_SECONDS,
    notAfter: now + request.ttlSeconds,
    isCa: false,
    keyUsage: keyUsageFor(csr.keyType),
    extKeyUsage: ['serverAuth', 'clientAuth'],
  };
}

/**
 * A rendered SPIFFE ID or DNS name is never echoed to the client: it is built from the role's
 * template and the token's claims, and may hold anything a claim held. The value goes to the log.
 */
const badSpiffeId = (value: string, problem: string) =>
  invalidRequest(`the role's x509.spiffeId does not render to a valid SPIFFE ID: it ${problem}`, {
    reason: 'invalid_spiffe_id',
    detail: { spiffeId: value.slice(0, 256) },
  });
const badDnsName = (value: string, problem: string) =>
  invalidRequest(`the role's x509.dnsNames do not render to valid DNS names: one ${problem}`, {
    reason: 'invalid_dns_name',
    detail: { dnsName: value.slice(0, 256) },
  });

const defaultValidators: readonly LeafValidator[] = [
  function lifetimeIsPositive(_profile, { request }) {
    if (!Number.isSafeInteger(request.ttlSeconds) || request.ttlSeconds < 1) {
      throw invalidRequest('x509-svid lifetime must be a positive whole number of seconds', {
        reason: 'invalid_duration',
      });
    }
  },
  function spiffeIdIsValid(profile, { trustDomain }) {
    for (const uri of profile.uris) {
      const problem = spiffeIdProblem(uri, trustDomain);
      if (problem) throw badSpiffeId(uri, problem);
    }
  },
  function dnsNamesAreValid(profile) {
    for (const name of profile.dnsNames) {
      const problem = dnsNameProblem(name);
      if (problem) throw badDnsName(name, problem);
    }
  },
];

/** The SPIFFE X.509-SVID leaf rules. Not exported for configuration on purpose. */
const enforcers: readonly LeafModifier[] = [
  function exactlyOneSpiffeUri(profile, { request, trustDomain }) {
    const problem = spiffeIdProblem(request.spiffeId, trustDomain);
    if (problem) throw badSpiffeId(request.spiffeId, problem);
    return { ...profile, uris: [request.spiffeId] };
  },
  function dnsNamesOnlyFromRequest(profile, { request }) {
    const allowed = new Set(request.dnsNames);
    const dnsNames = [...new Set(profile.dnsNames)].filter(
      (name) => allowed.has(name) && !dnsNameProblem(name),
    );
    return { ...profile, dnsNames };
  },
  function neverCa(profile) {
    return { ...profile, isCa: false };
  },
  function keyUsageForKeyType(profile, { csr }) {
    return {
      ...profile,
      keyUsage: keyUsageFor(csr.keyType),
      extKeyUsage: ['serverAuth', 'clientAuth'],
    };
  },
  function lifetimeWithinRequestAndCa(profile, { request, now, ca }) {
    const notBefore = Math.max(profile.notBefore, now - BACKDATE_SECONDS, ca.notBefore);
    const notAfter = Math.min(profile.notAfter, now + request.ttlSeconds, ca.notAfter);
    if (notAfter <= now)
      throw temporarilyUnavailable('the X.509 CA certificate has expired', {
        reason: 'ca_expired',
        detail: { caNotAfter: ca.notAfter },
      });
    return { ...profile, notBefore: Math.min(notBefore, now), notAfter };
  },
];

/** Runs the pipeline; the result is frozen. */
export function buildLeafProfile(
  context: LeafContext,
  options: { modifiers?: readonly LeafModifier[]; validators?: readonly LeafValidator[] } = {},
): Readonly<LeafProfile> {
  let profile = leafTemplate(context);
  for (const modify of options.modifiers ?? []) profile = modify(profile, context);
  for (const validate of [...defaultValidators, ...(options.validators ?? [])])
    validate(profile, context);
  for (const enforce of enforcers) profile = enforce(profile, context);
  return Object.freeze(profile);
}
