import { TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT, TOKEN_TYPE_X509_SVID } from '../constants.js';
import { createJwtIssuer, type JwtIssuerDeps } from './jwt.js';
import type { AnyIssuer } from './types.js';
import type { X509Authority } from './x509/index.js';

export interface IssuerDeps extends JwtIssuerDeps {
  /** The X.509-SVID issuer; without it, x509-svid requests are refused. */
  x509?: X509Authority;
}

/** The issuer of one requested token type, and what the response says about the token. */
export interface RegisteredIssuer {
  /** `issued_token_type`: the requested URN. */
  tokenType: string;
  /** RFC 8693 §2.2.1 `token_type`: `N_A` when the issued token is not an access token. */
  bearer: 'Bearer' | 'N_A';
  issuer: AnyIssuer;
}

/** Requested token type → its issuer; a type missing here is one this broker does not issue. */
export type Issuers = ReadonlyMap<string, RegisteredIssuer>;

type Entry = {
  bearer: RegisteredIssuer['bearer'];
  create: (deps: IssuerDeps, built: Built) => AnyIssuer | undefined;
};
/** Issuers built once and shared between the token types they serve. */
interface Built {
  jwt(): AnyIssuer;
}

/** One entry per requested token type (`REQUESTED_TOKEN_TYPES` in sts/request.ts). */
const ISSUERS: Record<string, Entry> = {
  [TOKEN_TYPE_ACCESS_TOKEN]: { bearer: 'Bearer', create: (_deps, built) => built.jwt() },
  [TOKEN_TYPE_JWT]: { bearer: 'N_A', create: (_deps, built) => built.jwt() },
  [TOKEN_TYPE_X509_SVID]: { bearer: 'N_A', create: (deps) => deps.x509 },
};

/**
 * The broker's issuers by requested token type.
 *
 * @example const issuers = createIssuers({ keys, issuer: () => 'https://sts.example.com', now: Date.now, x509 });
 */
export function createIssuers(deps: IssuerDeps): Issuers {
  let jwt: AnyIssuer | undefined;
  const built: Built = { jwt: () => (jwt ??= createJwtIssuer(deps)) };
  const issuers = new Map<string, RegisteredIssuer>();
  for (const [tokenType, entry] of Object.entries(ISSUERS)) {
    const issuer = entry.create(deps, built);
    if (issuer) issuers.set(tokenType, { tokenType, bearer: entry.bearer, issuer });
  }
  return issuers;
}
