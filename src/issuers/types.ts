import type { JwsAlgorithm } from '../keys/index.js';

/**
 * The one shape of an issuer: it takes a plain request, already rendered from the role's
 * templates and the verified identity (trust-policies does that, once), and returns the
 * credential as the RFC 8693 response fields it contributes. An issuer reads no policy and
 * renders no template.
 */

/** What a role can issue; one rendered request type per kind. */
export type CredentialKind = 'jwt' | 'x509-svid';

/** A JWT's contents with nothing left to render. */
export interface JwtRequest {
  algorithm: JwsAlgorithm;
  subject: string;
  /** One audience is issued as a string, several as an array (RFC 7519 §4.1.3). */
  audiences: string[];
  lifetimeSeconds: number;
  /** The role's rendered claims; names the issuer sets itself never shadow them. */
  claims: Record<string, unknown>;
  /** Granted scopes; empty for none. */
  scope: string[];
  /** `kubernetes.io`: only the Kubernetes facts a relying party may key on. */
  kubernetes?: Record<string, unknown>;
  /** `tessera`: the role and the cluster the subject token came from. */
  tessera: { role: string; cluster: string };
  /** The verified actor, for delegation (`act`, RFC 8693 §4.1). */
  actor?: { sub: string; iss: string };
}

/** An X.509-SVID to mint from a CSR. */
export interface SvidRequest {
  /** PKCS#10, PEM or base64url DER. */
  csr: string;
  /** Rendered from the role's `x509.spiffeId`. */
  spiffeId: string;
  /** Rendered from the role's `x509.dnsNames`; the only DNS names the leaf may carry. */
  dnsNames: string[];
  /** Requested lifetime, already capped by the role's `x509.maxTtl`. */
  ttlSeconds: number;
}

export interface IssueRequests {
  jwt: JwtRequest;
  'x509-svid': SvidRequest;
}

/** The RFC 8693 §2.2.1 response fields a credential contributes (the exchange adds the token types). */
export interface CredentialFields {
  access_token: string;
  expires_in: number;
  scope?: string;
  /** X.509-SVID: the leaf, PEM. */
  certificate?: string;
  /** X.509-SVID: leaf first, then intermediates; the root is excluded. */
  certificate_chain?: string[];
  /** X.509-SVID: root certificates, PEM. */
  trust_bundle?: string[];
}

/** What an X.509-SVID contributes: always the leaf, its chain and the roots. */
export interface SvidFields extends CredentialFields {
  certificate: string;
  certificate_chain: string[];
  trust_bundle: string[];
}

export interface IssuedCredential<F extends CredentialFields = CredentialFields> {
  fields: F;
  /** Unix seconds. */
  expiresAt: number;
  /** The JWT ID, when the credential has one. */
  jti?: string;
}

export interface Issuer<K extends CredentialKind = CredentialKind> {
  readonly kind: K;
  /** Rejects with a TesseraError (`invalid_request`, or `temporarily_unavailable` when a key is unreachable). */
  issue(request: IssueRequests[K]): Promise<IssuedCredential>;
}

/** Any issuer, as a union the compiler can narrow by `kind`. */
export type AnyIssuer = { [K in CredentialKind]: Issuer<K> }[CredentialKind];
