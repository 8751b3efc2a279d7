import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Logger } from '../observability/index.js';
import { looksLikeRoca } from './roca.js';

/** The only JWS algorithms a subject token may use: asymmetric, never `none`, never HS*. */
export const ACCEPTED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type AcceptedAlgorithm = (typeof ACCEPTED_ALGORITHMS)[number];

const EC_CURVE_OF: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
const EC_COORDINATE_BYTES: Record<string, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };
const OKP_CURVES = new Set(['Ed25519', 'Ed448']);
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 16384;

/** A key that passed {@link checkJwk}: safe to verify signatures with. */
export interface VerificationKey {
  kid?: string;
  kty: 'RSA' | 'EC' | 'OKP';
  /** The JWK's `alg`, when it declares one: the key may then only verify that algorithm. */
  alg?: string;
  crv?: string;
  key: KeyObject;
  /** The public JWK as ingested (public members only), for the shared cache. */
  jwk: Record<string, unknown>;
}

export const isAcceptedAlgorithm = (alg: unknown): alg is AcceptedAlgorithm =>
  typeof alg === 'string' && (ACCEPTED_ALGORITHMS as readonly string[]).includes(alg);

/**
 * Checks one JWK from an issuer's JWKS before it may verify anything: a known `kty`/`crv`,
 * `use: sig` and `key_ops` containing `verify` when present, an accepted `alg` that fits the
 * key when present, no private members, RSA of 2048–16384 bits with an odd `e` ≥ 3 and no
 * ROCA fingerprint, EC points on their curve.
 *
 * @example const checked = checkJwk(jwk); if (!checked.ok) log(checked.reason);
 */
export function checkJwk(
  jwk: unknown,
): { ok: true; key: VerificationKey } | { ok: false; reason: string } {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk))
    return { ok: false, reason: 'not a JSON object' };
  const candidate = jwk as Record<string, unknown>;
  const problem = describeProblem(candidate);
  if (problem) return { ok: false, reason: problem };
  const publicJwk = publicMembers(candidate);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: publicJwk, format: 'jwk' });
  } catch (error) {
    return {
      ok: false,
      reason: `does not import: ${error instanceof Error ? error.message : 'unknown error'}`,
    };
  }
  const keyProblem = candidate.kty === 'RSA' ? rsaProblem(key, candidate.n as string) : undefined;
  if (keyProblem) return { ok: false, reason: keyProblem };
  return {
    ok: true,
    key: {
      kty: candidate.kty as VerificationKey['kty'],
      key,
      jwk: publicJwk,
      ...(typeof candidate.kid === 'string' && candidate.kid !== '' ? { kid: candidate.kid } : {}),
      ...(typeof candidate.alg === 'string' ? { alg: candidate.alg } : {}),
      ...(typeof candidate.crv === 'string' ? { crv: candidate.crv } : {}),
    },
  };
}

/**
 * Checks every key of a JWKS, keeping the good ones; a bad key is skipped and logged. Keys
 * sharing a `kid` with different material are all dropped: which one a token meant is ambiguous.
 */
export function ingestJwks(
  jwks: unknown,
  logger: Logger,
  context: Record<string, unknown>,
): VerificationKey[] {
  const keys =
    jwks !== null && typeof jwks === 'object' ? (jwks as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) {
    logger.warn({ ...context }, 'jwks has no keys array');
    return [];
  }
  const accepted: VerificationKey[] = [];
  keys.forEach((jwk, index) => {
    const checked = checkJwk(jwk);
    if (checked.ok) accepted.push(checked.key);
    else
      logger.warn(
        { ...context, index, kid: (jwk as { kid?: unknown } | null)?.kid, reason: checked.reason },
        'jwks key skipped',
      );
  });
  const byKid = new Map<string, VerificationKey[]>();
  for (const key of accepted) if (key.kid) byKid.set(key.kid, [...(byKid.get(key.kid) ?? []), key]);
  const ambiguous = new Set<string>();
  for (const [kid, same] of byKid) {
    if (same.some((key) => !key.key.equals((same[0] as VerificationKey).key))) {
      ambiguous.add(kid);
      logger.warn({ ...context, kid }, 'jwks keys skipped: several different keys share one kid');
    }
  }
  return accepted.filter((key) => !key.kid || !ambiguous.has(key.kid));
}

/** Whether `key` may verify a signature made with `alg`. */
export function keyFitsAlgorithm(key: VerificationKey, alg: AcceptedAlgorithm): boolean {
  if (key.alg !== undefined && key.alg !== alg) return false;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return key.kty === 'RSA';
  if (alg === 'EdDSA') return key.kty === 'OKP';
  return key.kty === 'EC' && key.crv === EC_CURVE_OF[alg];
}

/** What is wrong with a JWK's members, or undefined when they may verify signatures. */
function describeProblem(jwk: Record<string, unknown>): string | undefined {
  const { kty, alg, use } = jwk;
  if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return `kty ${show(kty)} is not accepted`;
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) return 'contains private key members';
  if (use !== undefined && use !== 'sig') return `use ${show(use)} is not sig`;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify')))
    return 'key_ops lacks verify';
  if (alg !== undefined && !isAcceptedAlgorithm(alg)) return `alg ${show(alg)} is not accepted`;
  return MEMBER_PROBLEM[kty](jwk, alg);
}

/** Per key type: the members it needs and the algorithms that fit it (`alg` already accepted or absent). */
const MEMBER_PROBLEM: Record<
  'RSA' | 'EC' | 'OKP',
  (jwk: Record<string, unknown>, alg: AcceptedAlgorithm | undefined) => string | undefined
> = {
  RSA(jwk, alg) {
    if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') return 'RSA key without n and e';
    if (alg !== undefined && !/^(RS|PS)/.test(alg)) return `alg ${alg} does not fit an RSA key`;
    return undefined;
  },
  EC(jwk, alg) {
    const crv = jwk.crv;
    const size = typeof crv === 'string' ? EC_COORDINATE_BYTES[crv] : undefined;
    if (size === undefined) return `EC curve ${show(crv)} is not accepted`;
    if (alg !== undefined && EC_CURVE_OF[alg] !== crv)
      return `alg ${alg} does not fit curve ${show(crv)}`;
    for (const coordinate of ['x', 'y'] as const) {
      const value = jwk[coordinate];
      if (typeof value !== 'string' || Buffer.from(value, 'base64url').length !== size)
        return `EC ${coordinate} has the wrong length`;
    }
    return undefined;
  },
  OKP(jwk, alg) {
    const crv = jwk.crv;
    if (typeof crv !== 'string' || !OKP_CURVES.has(crv))
      return `OKP curve ${show(crv)} is not accepted`;
    if (alg !== undefined && alg !== 'EdDSA') return `alg ${alg} does not fit an OKP key`;
    if (typeof jwk.x !== 'string') return 'OKP key without x';
    return undefined;
  },
};

/** A member's value for a log line: strings as they are, anything else as (bounded) JSON. */
function show(value: unknown): string {
  if (typeof value === 'string') return value;
  return (JSON.stringify(value) ?? typeof value).slice(0, 64);
}

function rsaProblem(key: KeyObject, modulus: string): string | undefined {
  const details = key.asymmetricKeyDetails;
  const bits = details?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) return `RSA modulus of ${bits} bits is below ${MIN_RSA_BITS}`;
  if (bits > MAX_RSA_BITS) return `RSA modulus of ${bits} bits is above ${MAX_RSA_BITS}`;
  const exponent = details?.publicExponent ?? 0n;
  if (exponent < 3n || exponent % 2n === 0n)
    return `RSA public exponent ${exponent} is not an odd number >= 3`;
  if (looksLikeRoca(BigInt(`0x${Buffer.from(modulus, 'base64url').toString('hex') || '0'}`)))
    return 'RSA modulus has the ROCA fingerprint (CVE-2017-15361)';
  return undefined;
}

function publicMembers(jwk: Record<string, unknown>): Record<string, unknown> {
  const names = jwk.kty === 'RSA' ? ['kty', 'n', 'e'] : ['kty', 'crv', 'x', 'y'];
  const result: Record<string, unknown> = {};
  for (const name of [...names, 'kid', 'alg', 'use', 'key_ops'])
    if (jwk[name] !== undefined) result[name] = jwk[name];
  return result;
}
