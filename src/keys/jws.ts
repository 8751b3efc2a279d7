import type { SigningKey } from './types.js';

const encoder = new TextEncoder();
const base64url = (bytes: Uint8Array | string): string =>
  (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('base64url');

/**
 * A compact JWS (RFC 7515 §7.1) signed by `key`. `alg` and `kid` in the header always come
 * from the key, so a caller cannot label a token with another key's id; `typ` is `JWT` unless
 * `header` sets it (e.g. `at+jwt`).
 *
 * @example const jwt = await signJws(await keys.signingKey('ES256'), {}, { sub: 'x' });
 */
export async function signJws(key: SigningKey, header: Record<string, unknown>, payload: Record<string, unknown> | string): Promise<string> {
  const protectedHeader = base64url(JSON.stringify({ typ: 'JWT', ...header, alg: key.alg, kid: key.kid }));
  const body = base64url(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const signingInput = `${protectedHeader}.${body}`;
  const signature = await key.sign(encoder.encode(signingInput));
  return `${signingInput}.${base64url(signature)}`;
}
