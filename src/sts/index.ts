export { createStsApp, type Readiness, type StsDeps } from './app.js';
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
export {
  auditExchange,
  auditIdentity,
  auditDecision,
  auditIssued,
  type ExchangeAudit,
} from './audit.js';
export { selectRole } from './select-role.js';
export { clientAddress, trustedProxies } from './client-address.js';
export type { TrustedProxies } from './client-address.js';
export { peerAddress, requestHeader } from './incoming.js';
export type { RateLimitSettings } from './rate-limit.js';
export { LISTENER_SCOPE_ENV, servesRoute, type ListenerScope } from './listener-scope.js';
