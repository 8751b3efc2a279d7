import type { SigningKey } from './types.js';

const base64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

/**
 * Encoded protected headers of headers that set at most `typ` (every JWT the broker issues),
 * per key and `typ`: the header JSON and its base64url are the same for every token a key signs.
 */
const encodedHeaders = new WeakMap<SigningKey, Map<string, string>>();

function encodeHeader(key: SigningKey, header: Record<string, unknown>): string {
  const names = Object.keys(header);
  const typOnly =
    names.length === 0 ||
    (names.length === 1 && names[0] === 'typ' && typeof header.typ === 'string');
  if (!typOnly)
    return base64url(JSON.stringify({ typ: 'JWT', ...header, alg: key.alg, kid: key.kid }));
  const typ = (header.typ as string | undefined) ?? 'JWT';
  let byTyp = encodedHeaders.get(key);
  if (!byTyp) encodedHeaders.set(key, (byTyp = new Map<string, string>()));
  let encoded = byTyp.get(typ);
  if (encoded === undefined)
    byTyp.set(typ, (encoded = base64url(JSON.stringify({ typ, alg: key.alg, kid: key.kid }))));
  return encoded;
}

/**
 * A compact JWS (RFC 7515 §7.1) signed by `key`. `alg` and `kid` in the header always come
 * from the key, so a caller cannot label a token with another key's id; `typ` is `JWT` unless
 * `header` sets it (e.g. `at+jwt`).
 *
 * @example const jwt = await signJws(await keys.signingKey('ES256'), {}, { sub: 'x' });
 */
export async function signJws(
  key: SigningKey,
  header: Record<string, unknown>,
  payload: Record<string, unknown> | string,
): Promise<string> {
  const body = base64url(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const signingInput = `${encodeHeader(key, header)}.${body}`;
  // base64url is ASCII: latin1 is a byte per character without a UTF-8 pass.
  const signature = await key.sign(Buffer.from(signingInput, 'latin1'));
  return `${signingInput}.${Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64url')}`;
}
