/**
 * Names shared by the broker, its CLI and the SDK, defined once. This module imports nothing,
 * so the SDK (which must run on older Node versions) and the config schema can use it without
 * pulling in the rest of the broker.
 */

/** RFC 8693 grant type and token types, and Tessera's own type for an X.509-SVID. */
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_X509_SVID = 'urn:tessera:params:oauth:token-type:x509-svid';

/** JWS algorithms Tessera signs with (key providers, `keys.algorithms`, a role's `issue.algorithm`). */
export const SIGNING_ALGORITHMS = ['ES256', 'RS256', 'PS256'] as const;

/** Host names (as `URL.hostname` spells them) where plain http cannot leave the machine. */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);
