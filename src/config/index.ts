export { configSchema, clusterSchema, durationSchema, issuerProblem } from './schema.js';
export type { Config, ConfigInput, ClusterConfig, KeysConfig, ImageSignaturesConfig } from './schema.js';
export { loadConfig, parseConfig, ConfigError, DEFAULT_CONFIG, formatIssues, formatPath } from './load.js';
export { parseDuration, formatDuration } from './duration.js';
