import type { ClusterConfig } from '../config/index.js';
import { temporarilyUnavailable } from '../errors.js';
import type { WorkloadIdentity } from './types.js';

/** Placeholder until TokenReview verification lands: refuses with 503, never 500. */
export function createTokenReviewVerifier(cluster: ClusterConfig): { verify(token: string): Promise<WorkloadIdentity>; close(): Promise<void> } {
  return {
    async verify() {
      throw temporarilyUnavailable('token review is unavailable', { detail: { cluster: cluster.name } });
    },
    async close() {},
  };
}
