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
export {
  CA_FILE,
  CA_KEY_NAME,
  caDirectory,
  checkImportedCa,
  createCaCsr,
  createSelfSignedCa,
  createX509Authority,
  pemBlocks,
  readStoredCa,
  spkiOf,
  writeStoredCa,
} from './x509/index.js';
export type { X509Authority, X509AuthorityOptions } from './x509/index.js';
