export { createIssuers } from './registry.js';
export type { IssuerDeps, Issuers, RegisteredIssuer } from './registry.js';
export { createJwtIssuer, jwtClaims } from './jwt.js';
export type { JwtIssuerDeps } from './jwt.js';
export type {
  AnyIssuer,
  CredentialFields,
  CredentialKind,
  IssuedCredential,
  IssueRequests,
  Issuer,
  JwtRequest,
  SvidFields,
  SvidRequest,
} from './types.js';
