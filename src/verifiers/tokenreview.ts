import type { SharedCache } from '../cache/index.js';
import type { ClusterConfig } from '../config/index.js';
import { temporarilyUnavailable } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import type { WorkloadIdentity } from './types.js';

export interface TokenReviewDeps {
  cache: SharedCache;
  logger: Logger;
  metrics?: Metrics;
  now?: () => number;
  /** The audiences the review asks the API server to check. */
  audiences: string[];
}

/** Placeholder until TokenReview verification lands: refuses with 503, never 500. */
export function createTokenReviewVerifier(
  cluster: ClusterConfig,
  _deps: TokenReviewDeps,
): { verify(token: string): Promise<WorkloadIdentity>; close(): Promise<void> } {
  return {
    async verify() {
      throw temporarilyUnavailable('token review is unavailable', { detail: { cluster: cluster.name } });
    },
    async close() {},
  };
}
