import { randomFillSync } from 'node:crypto';
import { signJws } from '../keys/index.js';
import type { KeyProvider } from '../keys/index.js';
import type { Issuer, JwtRequest } from './types.js';

export interface JwtIssuerDeps {
  /** Signs with its active key for the request's algorithm (the private key may live in an HSM). */
  keys: Pick<KeyProvider, 'signingKey'>;
  /** The broker's issuer, `iss` of every token; read per token, as it may follow the listener's port. */
  issuer: () => string;
  /** Milliseconds since the epoch. */
  now: () => number;
}

/**
 * The claims this issuer sets. A rendered claim of the same name is dropped, so nothing a role
 * renders can shadow the subject, the lifetime, the scope or a delegation, even when the issuer
 * leaves that claim out (no `act` without an actor).
 */
const ISSUER_CLAIMS = new Set([
  'iss',
  'sub',
  'aud',
  'iat',
  'nbf',
  'exp',
  'jti',
  'scope',
  'act',
  'kubernetes.io',
  'tessera',
]);

/** The request's claims without the issuer's names, written into `claims` (which starts empty). */
function addRenderedClaims(
  claims: Record<string, unknown>,
  rendered: Record<string, unknown>,
): void {
  for (const name of Object.keys(rendered)) {
    if (ISSUER_CLAIMS.has(name)) continue;
    // An own member like any other, never the object's prototype.
    const value = rendered[name];
    if (name === '__proto__')
      Object.defineProperty(claims, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else claims[name] = value;
  }
}

/**
 * 128-bit `jti`s cut from a pool filled 256 at a time: one CSPRNG call per 256 tokens instead of
 * one per token. Each slice is handed out once.
 */
const JTI_BYTES = 16;
const jtiPool = Buffer.alloc(JTI_BYTES * 256);
let jtiOffset = jtiPool.length;
function newJti(): string {
  if (jtiOffset === jtiPool.length) {
    randomFillSync(jtiPool);
    jtiOffset = 0;
  }
  const jti = jtiPool.toString('base64url', jtiOffset, jtiOffset + JTI_BYTES);
  jtiOffset += JTI_BYTES;
  return jti;
}

/** The claims set of a JWT for `request`, issued at `now` (Unix seconds). */
export function jwtClaims(
  request: JwtRequest,
  issuer: string,
  now: number,
  jti: string,
): Record<string, unknown> {
  // Rendered claims come first and lose every name set below, so they never shadow it.
  const claims: Record<string, unknown> = {};
  addRenderedClaims(claims, request.claims);
  claims.iss = issuer;
  claims.sub = request.subject;
  claims.aud = request.audiences.length === 1 ? request.audiences[0] : request.audiences;
  claims.iat = now;
  claims.nbf = now;
  claims.exp = now + request.lifetimeSeconds;
  claims.jti = jti;
  if (request.kubernetes) claims['kubernetes.io'] = request.kubernetes;
  claims.tessera = { role: request.tessera.role, cluster: request.tessera.cluster };
  if (request.scope.length > 0) claims.scope = request.scope.join(' ');
  if (request.actor) claims.act = { sub: request.actor.sub, iss: request.actor.iss };
  return claims;
}

/**
 * The JWT issuer: signs the rendered claims through the key provider.
 *
 * @example const jwt = createJwtIssuer({ keys, issuer: () => 'https://sts.example.com', now: Date.now });
 */
export function createJwtIssuer(deps: JwtIssuerDeps): Issuer<'jwt'> {
  return {
    kind: 'jwt',
    async issue(request) {
      const key = await deps.keys.signingKey(request.algorithm);
      const now = Math.floor(deps.now() / 1000);
      const jti = newJti();
      const claims = jwtClaims(request, deps.issuer(), now, jti);
      const token = await signJws(key, { typ: 'JWT' }, claims);
      return {
        fields: {
          access_token: token,
          expires_in: request.lifetimeSeconds,
          ...(request.scope.length > 0 && { scope: request.scope.join(' ') }),
        },
        expiresAt: now + request.lifetimeSeconds,
        jti,
      };
    },
  };
}
