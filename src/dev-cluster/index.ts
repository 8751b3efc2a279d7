export {
  loadDevCluster,
  type DevCluster,
  type DevClusterConfig,
  type DevTokenOptions,
} from './dev-cluster.js';
