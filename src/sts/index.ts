export { createSts, createStsApp, type Readiness, type Sts, type StsDeps } from './app.js';
export type { DirectHandler } from './node-token.js';
export {
  parseTokenExchange,
  GRANT_TOKEN_EXCHANGE,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_ID_TOKEN,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_X509_SVID,
} from './request.js';
export type { TokenExchangeRequest } from './request.js';
export { exchangeToken } from './exchange.js';
export type { ExchangeDeps, ExchangeResponse } from './exchange.js';
export { discoveryDocument } from './discovery.js';
export { auditIdentity, auditDecision, auditIssued, type ExchangeAudit } from './audit.js';
export { selectRole } from './select-role.js';
export { clientAddress, trustedProxies } from './client-address.js';
export type { TrustedProxies } from './client-address.js';
export { peerAddress, type RequestView } from './incoming.js';
export type { RateLimitSettings } from './rate-limit.js';
export { LISTENER_SCOPE_ENV, servesRoute, type ListenerScope } from './listener-scope.js';
