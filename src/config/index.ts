export {
  configSchema,
  clusterSchema,
  durationSchema,
  issuerOfListener,
  DEFAULT_MAX_TOKEN_LIFETIME,
} from './schema.js';
export type {
  Config,
  ConfigInput,
  ClusterConfig,
  KeysConfig,
  ListenConfig,
  ListenerConfig,
  ImageSignaturesConfig,
} from './schema.js';
export { loadConfig, parseConfig, ConfigError, formatPath } from './load.js';
export { parseDuration, formatDuration } from './duration.js';
export { issuerHostPath, normalizeHostPath } from './issuer-host-path.js';
export { parseCidr } from './cidr.js';
