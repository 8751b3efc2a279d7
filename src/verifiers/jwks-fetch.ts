import { readFile } from 'node:fs/promises';
import type { ClusterConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { FetchError, httpGet, type HttpGetOptions } from './http-get.js';
import { ingestJwks, type VerificationKey } from './verification-keys.js';
import type { KeyFetchFailure } from './types.js';

/** Bounds on how long a fetched JWKS counts as fresh, whatever the issuer's Cache-Control says. */
const MIN_MAX_AGE_SECONDS = 60;
const MAX_MAX_AGE_SECONDS = 24 * 3600;
/** Freshness when the issuer sends no max-age (kube-apiserver sends 3600). */
const DEFAULT_MAX_AGE_SECONDS = 15 * 60;

export interface FetchedKeys {
  keys: VerificationKey[];
  maxAgeSeconds: number;
}

/**
 * Fetches a cluster's keys from its issuer: discovery (whose `issuer` must equal the configured
 * one exactly) then `jwks_uri`, or the configured `jwksUri` directly. Every key is checked on
 * ingestion; a JWKS with no usable key is a failure, so the last good keys stay in use.
 */
export function createJwksFetcher(cluster: ClusterConfig, deps: { logger: Logger }) {
  const context = { cluster: cluster.name, issuer: cluster.issuer };
  let caPem: Promise<string> | undefined;
  const ca = (): Promise<string> | undefined => {
    if (!cluster.caFile) return undefined;
    caPem ??= readFile(cluster.caFile, 'utf8').catch((error: Error) => {
      caPem = undefined;
      throw new FetchError(`cannot read caFile ${cluster.caFile}: ${error.message}`, 'ca-file');
    });
    return caPem;
  };
  const getOptions = async (): Promise<HttpGetOptions> => {
    const pem = await ca();
    return { allowHttp: cluster.allowInsecure, ...(pem ? { ca: pem } : {}) };
  };

  // Discovery by hand rather than openid-client's discovery(): that validates the issuer the same
  // way (exact match with the configured one) but is built for relying parties: it wants a client
  // id the broker does not have, fetches through its own fetch (so the size cap, redirect policy
  // and caFile pinning of httpGet would have to be re-plumbed through `customFetch`), and would
  // move a development-only package into the runtime for the two fields read here.
  const discoverJwksUri = async (options: HttpGetOptions): Promise<string> => {
    const url = `${cluster.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const document = parseJson(
      (await httpGet(url, options)).body,
      'discovery document',
      'bad-discovery',
    );
    if (document.issuer !== cluster.issuer) {
      throw new FetchError(
        `discovery issuer ${JSON.stringify(document.issuer)} differs from the configured issuer`,
        'bad-discovery',
      );
    }
    if (typeof document.jwks_uri !== 'string' || !URL.canParse(document.jwks_uri))
      throw new FetchError('discovery document has no jwks_uri', 'bad-discovery');
    return document.jwks_uri;
  };

  return async function fetchKeys(): Promise<FetchedKeys> {
    const options = await getOptions();
    const jwksUri = cluster.jwksUri ?? (await discoverJwksUri(options));
    const response = await httpGet(jwksUri, options);
    const keys = ingestJwks(parseJson(response.body, 'JWKS', 'bad-jwks'), deps.logger, context);
    if (keys.length === 0) throw new FetchError('JWKS has no usable key', 'bad-jwks');
    return { keys, maxAgeSeconds: boundedMaxAge(response.cacheControl) };
  };
}

/** The `max-age` of a Cache-Control header, clamped to [1 min, 24 h]; no-store/no-cache count as the minimum. */
export function boundedMaxAge(cacheControl: string | undefined): number {
  if (!cacheControl) return DEFAULT_MAX_AGE_SECONDS;
  const directives = cacheControl
    .toLowerCase()
    .split(',')
    .map((part) => part.trim());
  if (directives.includes('no-store') || directives.includes('no-cache'))
    return MIN_MAX_AGE_SECONDS;
  const maxAge = directives.map((part) => /^max-age\s*=\s*"?(\d+)"?$/.exec(part)).find(Boolean);
  if (!maxAge) return DEFAULT_MAX_AGE_SECONDS;
  return Math.min(MAX_MAX_AGE_SECONDS, Math.max(MIN_MAX_AGE_SECONDS, Number(maxAge[1])));
}

function parseJson(body: string, what: string, failure: KeyFetchFailure): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new FetchError(`${what} is not JSON`, failure);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new FetchError(`${what} is not a JSON object`, failure);
  return value as Record<string, unknown>;
}
