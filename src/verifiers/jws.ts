import { parseCompactJws, type CompactJws } from './compact.js';
import {
  isAcceptedAlgorithm,
  keyFitsAlgorithm,
  type AcceptedAlgorithm,
  type VerificationKey,
} from './verification-keys.js';
import { refuse } from './refusals.js';
import { verifyJwsSignature } from './signature.js';

/** Headers that point at keys: an attacker controls them, so a token carrying one is refused. */
const KEY_POINTER_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;

export type SignatureResult =
  | { ok: true; key: VerificationKey }
  | { ok: false; reason: 'unknown-kid' | 'no-key-for-alg' | 'bad-signature' };

/**
 * Checks the protected header: an accepted `alg`, no key-pointer headers, no `crit` (Tessera
 * understands no extension), a string `kid` when present. Returns the algorithm.
 */
export function checkHeader(header: Record<string, unknown>): AcceptedAlgorithm {
  const { alg } = header;
  if (!isAcceptedAlgorithm(alg)) {
    throw refuse('algorithm_not_accepted', {
      alg: typeof alg === 'string' ? alg.slice(0, 32) : typeof alg,
    });
  }
  const pointer = KEY_POINTER_HEADERS.find((name) => name in header);
  if (pointer) throw refuse('header_not_accepted', { header: pointer });
  if ('crit' in header) throw refuse('header_not_accepted', { header: 'crit' });
  if (header.kid !== undefined && typeof header.kid !== 'string')
    throw refuse('malformed_token', { header: 'kid', problem: 'kid is not a string' });
  return alg;
}

/** The header's `kid`, or undefined when absent or empty (old Kubernetes tokens carry `kid: ""`). */
const headerKid = (header: Record<string, unknown>): string | undefined =>
  typeof header.kid === 'string' && header.kid !== '' ? header.kid : undefined;

/**
 * Verifies the signature with the candidate keys: those with the header's `kid`, or, when the
 * header has no (or an empty) `kid`, every key that fits the algorithm. node:crypto does the
 * cryptography (signature.ts), restricted to the header's algorithm and handed the key imported
 * at ingestion (never anything a header names).
 */
export function verifySignature(
  jws: CompactJws,
  alg: AcceptedAlgorithm,
  keys: readonly VerificationKey[],
): SignatureResult {
  const kid = headerKid(jws.header);
  const named = kid === undefined ? keys : keys.filter((key) => key.kid === kid);
  if (named.length === 0) return { ok: false, reason: 'unknown-kid' };
  const candidates = named.filter((key) => keyFitsAlgorithm(key, alg));
  if (candidates.length === 0) return { ok: false, reason: 'no-key-for-alg' };
  // The strict parse admitted only base64url characters, so the token is ASCII: one byte per character.
  const signingInput = Buffer.from(jws.token.slice(0, jws.token.lastIndexOf('.')), 'latin1');
  for (const key of candidates) {
    // With no kid, any key of the right type may be the signer: try the next one.
    if (verifyJwsSignature(alg, key.key, signingInput, jws.signature)) return { ok: true, key };
  }
  return { ok: false, reason: 'bad-signature' };
}

/**
 * The whole signature layer for one token against a fixed key list, for tooling and tests:
 * strict compact parse, header checks, signature. The payload need not be JSON here.
 */
export function verifyCompactJws(
  token: string,
  keys: readonly VerificationKey[],
): { header: Record<string, unknown>; payload: Uint8Array; key: VerificationKey } {
  const jws = parseCompactJws(token);
  const alg = checkHeader(jws.header);
  const result = verifySignature(jws, alg, keys);
  if (!result.ok) throw signatureError(result.reason, jws.header);
  return { header: jws.header, payload: jws.payload, key: result.key };
}

const SIGNATURE_REASONS = {
  'unknown-kid': 'unknown_kid',
  'no-key-for-alg': 'no_key_for_algorithm',
  'bad-signature': 'bad_signature',
} as const;

/** The refusal for a failed {@link verifySignature}, naming the header's kid and alg for the log. */
export function signatureError(
  failure: keyof typeof SIGNATURE_REASONS,
  header: Record<string, unknown>,
) {
  return refuse(SIGNATURE_REASONS[failure], { kid: headerKid(header), alg: header.alg });
}
