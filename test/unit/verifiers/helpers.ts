import type { SharedCache } from '../../../src/cache/index.js';
import { createMemoryCache } from '../../../src/cache/index.js';
import type { ClusterConfig } from '../../../src/config/index.js';
import { isTesseraError, type TesseraError } from '../../../src/errors.js';
import { createMetrics, silentLogger } from '../../../src/observability/index.js';
import {
  createSubjectTokenVerifier,
  type SubjectTokenVerifierOptions,
} from '../../../src/verifiers/index.js';

const AUDIENCE = 'sts.example.com';

/** A cluster config as the zod schema would produce it (defaults filled in). */
export function cluster(overrides: Partial<ClusterConfig> & { issuer: string }): ClusterConfig {
  return { name: 'prod', verify: 'jwks', allowInsecure: false, ...overrides };
}

/** A clock tests move by hand. */
export function manualClock(start = Date.UTC(2030, 0, 1)) {
  let current = start;
  return {
    now: () => current,
    advance(ms: number) {
      current += ms;
    },
    set(ms: number) {
      current = ms;
    },
  };
}

export function makeVerifier(
  clusters: ClusterConfig[],
  options: Partial<SubjectTokenVerifierOptions> & { cache?: SharedCache } = {},
) {
  const now = options.now ?? Date.now;
  const metrics = options.metrics ?? createMetrics();
  const cache = options.cache ?? createMemoryCache({ now });
  const verifier = createSubjectTokenVerifier({
    audience: AUDIENCE,
    logger: silentLogger(),
    ...options,
    clusters,
    cache,
    now,
    metrics,
  });
  return { verifier, metrics, cache };
}

/** The TesseraError fields a client sees, or 'ok'. */
export async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    const { status, code, description } = error as {
      status?: number;
      code?: string;
      description?: string;
    };
    return `${status} ${code}: ${description}`;
  }
}

/** The TesseraError `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export async function refusal(promise: Promise<unknown>): Promise<TesseraError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  if (!isTesseraError(error))
    throw new Error(
      `expected a TesseraError, got ${error === undefined ? 'success' : 'another error'}`,
      { cause: error },
    );
  return error;
}
