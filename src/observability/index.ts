export { createLogger, silentLogger } from './logger.js';
export type { Logger } from './logger.js';
export { createMetrics } from './metrics.js';
export type { Metrics, StateSources } from './metrics.js';
export { createAuditLog } from './audit.js';
export type { AuditEvent, AuditLog } from './audit.js';
