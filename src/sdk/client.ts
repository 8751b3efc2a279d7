import { webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type * as X509 from '@peculiar/x509';
import { z } from 'zod';
import {
  GRANT_TOKEN_EXCHANGE,
  LOOPBACK_HOSTS,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_X509_SVID,
} from '../constants.js';

/** What a pod needs to reach Tessera. */
export interface ClientOptions {
  /** Base URL of the broker, e.g. `https://tessera.example.com`. */
  endpoint: string;
  /** The projected service-account token file (re-read on every exchange: the kubelet rotates it). */
  tokenFile: string;
  audience?: string;
  resource?: string;
  scope?: string;
  /** Refresh when less than this fraction of the lifetime is left (default 0.2). */
  refreshFraction?: number;
  /** Abort one exchange after this long (default 10 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
  /** Allow a plain-http endpoint that is not on loopback (never in production: the SA token travels in clear). */
  allowInsecure?: boolean;
  /** Called when a refresh fails while the cached token is still valid (and is returned instead). */
  onRefreshError?: (error: unknown) => void;
}

export interface Certificate {
  certificatePem: string;
  /** PKCS#8 PEM of the key generated for the CSR; it never leaves the pod. */
  privateKeyPem: string;
  chainPem: string[];
  trustBundlePem: string[];
  expiresAt: number;
}

/** A refusal from the broker, with its RFC 6749 code. */
export class ExchangeError extends Error {
  readonly status: number;
  readonly code: string;
  /** The broker's `error_description` (may be empty). */
  readonly description: string;
  /** The token endpoint that answered. */
  readonly endpoint: string;
  constructor(status: number, code: string, description: string, endpoint = '') {
    super(`${code}: ${description}`);
    this.name = 'ExchangeError';
    this.status = status;
    this.code = code;
    this.description = description;
    this.endpoint = endpoint;
  }
}

/** The broker could not be reached, or did not answer in time; `cause` holds the network error. */
export class NetworkError extends Error {
  /** The token endpoint that was called. */
  readonly endpoint: string;
  /** True when the exchange was abandoned after `timeoutMs`. */
  readonly timedOut: boolean;
  constructor(
    endpoint: string,
    timedOut: boolean,
    options: { cause: unknown; timeoutMs?: number },
  ) {
    super(
      timedOut
        ? `no answer from ${endpoint} within ${options.timeoutMs} ms`
        : `cannot reach ${endpoint}: ${causeText(options.cause)}`,
      {
        cause: options.cause,
      },
    );
    this.name = 'NetworkError';
    this.endpoint = endpoint;
    this.timedOut = timedOut;
  }
}

/** undici hides the reason (ECONNREFUSED, a TLS failure) one level down, under `fetch failed`. */
function causeText(error: unknown): string {
  const inner = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  if (!(inner instanceof Error)) return String(inner);
  const code = (inner as NodeJS.ErrnoException).code;
  return code && !inner.message.includes(code) ? `${code}: ${inner.message}` : inner.message;
}

/** Worth trying again later: the network, a timeout, an overloaded or failing broker. A refusal is not. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof NetworkError) return true;
  if (error instanceof ExchangeError) return error.status >= 500 || error.status === 429;
  return false;
}

const successSchema = z.object({
  access_token: z.string(),
  expires_in: z.number(),
  certificate: z.string().optional(),
  certificate_chain: z.array(z.string()).optional(),
  trust_bundle: z.array(z.string()).optional(),
});
const errorSchema = z.object({ error: z.string(), error_description: z.string().optional() });

/**
 * The Tessera client for pods: exchanges the pod's service-account token and caches the
 * result until it nears expiry.
 *
 * @example
 *   const client = createClient({ endpoint, tokenFile: '/var/run/secrets/tokens/tessera', resource: 'orders-reader' });
 *   const jwt = await client.getToken();
 */
export function createClient(options: ClientOptions) {
  const exchange = exchanger(options);
  const now = options.now ?? Date.now;
  const refreshFraction = options.refreshFraction ?? 0.2;
  let cachedToken: { value: string; expiresAt: number; refreshAt: number } | undefined;
  let inFlight: Promise<string> | undefined;
  /** Set while refreshes fail: the still-valid token is returned at once, and the next try waits until then. */
  let retryAt: number | undefined;
  let retryDelayMs = 1000;

  const deadlines = (lifetimeSeconds: number) => {
    const at = now();
    return {
      expiresAt: at + lifetimeSeconds * 1000,
      refreshAt: at + lifetimeSeconds * 1000 * (1 - refreshFraction),
    };
  };

  function refresh(): Promise<string> {
    inFlight ??= exchange({ requested_token_type: TOKEN_TYPE_JWT })
      .then(
        (result) => {
          cachedToken = { value: result.access_token, ...deadlines(result.expires_in) };
          retryAt = undefined;
          retryDelayMs = 1000;
          return result.access_token;
        },
        (error: unknown) => {
          retryAt = now() + retryDelayMs;
          retryDelayMs = Math.min(retryDelayMs * 2, 30_000);
          throw error;
        },
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  }

  const stillValid = () =>
    cachedToken && now() < cachedToken.expiresAt ? cachedToken.value : undefined;

  return {
    /** When the cached JWT is due for refresh (ms since the epoch), or undefined before the first exchange. */
    tokenRefreshAt(): number | undefined {
      return cachedToken?.refreshAt;
    },
    /**
     * A valid JWT for the configured role/audience, fetched when absent or near expiry. When the
     * refresh fails (broker down) and the cached token has not expired, that token is returned
     * and later calls refresh in the background, with backoff, until the broker answers again.
     */
    async getToken(): Promise<string> {
      if (cachedToken && now() < cachedToken.refreshAt) return cachedToken.value;
      const valid = stillValid();
      if (valid !== undefined && retryAt !== undefined) {
        if (!inFlight && now() >= retryAt)
          refresh().catch((error: unknown) => options.onRefreshError?.(error));
        return valid;
      }
      try {
        return await refresh();
      } catch (error) {
        const fallback = stillValid();
        if (fallback === undefined) throw error;
        options.onRefreshError?.(error);
        return fallback;
      }
    },
    /** A new exchange now (joining one in flight), whatever the cache holds; throws when it fails. */
    refreshToken(): Promise<string> {
      return refresh();
    },
    /** A fresh X.509-SVID for a new EC P-256 key generated here. */
    getCertificate(): Promise<Certificate> {
      return newCertificate(exchange, now);
    },
  };
}

type Exchange = (extra: Record<string, string>) => Promise<z.infer<typeof successSchema>>;

/** One RFC 8693 exchange with the broker: the subject token read fresh from its file, the answer checked with zod. */
function exchanger(options: ClientOptions): Exchange {
  const tokenUrl = tokenEndpoint(options.endpoint, options.allowInsecure ?? false);
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;

  async function post(body: URLSearchParams): Promise<Response> {
    try {
      return await doFetch(tokenUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const timedOut =
        error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      throw new NetworkError(tokenUrl.href, timedOut, { cause: error, timeoutMs });
    }
  }

  async function exchange(extra: Record<string, string>): Promise<z.infer<typeof successSchema>> {
    const subjectToken = (await readFile(options.tokenFile, 'utf8')).trim();
    const body = new URLSearchParams({
      grant_type: GRANT_TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: TOKEN_TYPE_JWT,
      ...extra,
    });
    if (options.audience) body.set('audience', options.audience);
    if (options.resource) body.set('resource', options.resource);
    if (options.scope) body.set('scope', options.scope);
    const response = await post(body);
    const json: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const parsed = errorSchema.safeParse(json);
      throw new ExchangeError(
        response.status,
        parsed.success ? parsed.data.error : 'server_error',
        parsed.success ? (parsed.data.error_description ?? '') : `HTTP ${response.status}`,
        tokenUrl.href,
      );
    }
    const parsed = successSchema.safeParse(json);
    if (!parsed.success)
      throw new ExchangeError(
        response.status,
        'invalid_response',
        'the broker answered with an unexpected body',
        tokenUrl.href,
      );
    return parsed.data;
  }

  return exchange;
}

/** Generates an EC P-256 key, has the broker certify it, and returns the SVID with the key as PKCS#8 PEM. */
async function newCertificate(exchange: Exchange, now: () => number): Promise<Certificate> {
  const { Pkcs10CertificateRequestGenerator, PemConverter } = await loadX509();
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const csr = await Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const result = await exchange({
    requested_token_type: TOKEN_TYPE_X509_SVID,
    csr: csr.toString('pem'),
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    certificatePem: result.certificate ?? result.access_token,
    privateKeyPem: PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    chainPem: result.certificate_chain ?? [],
    trustBundlePem: result.trust_bundle ?? [],
    expiresAt: now() + result.expires_in * 1000,
  };
}

export type TesseraClient = ReturnType<typeof createClient>;

/** The CSR library (and the decorator metadata it needs) only for certificates: a JWT sidecar stays small. */
async function loadX509(): Promise<typeof X509> {
  await import('reflect-metadata');
  return import('@peculiar/x509');
}

/**
 * `<endpoint>/v1/token`, keeping any base path (a broker behind `https://gw/tessera/`).
 * The service-account token must not travel in clear: http only on loopback or when allowed.
 */
export function tokenEndpoint(endpoint: string, allowInsecure: boolean): URL {
  if (!URL.canParse(endpoint))
    throw new TypeError(`endpoint is not a URL: ${endpoint.slice(0, 100)}`);
  const base = new URL(endpoint.endsWith('/') ? endpoint : `${endpoint}/`);
  if (
    base.protocol !== 'https:' &&
    !(base.protocol === 'http:' && (LOOPBACK_HOSTS.has(base.hostname) || allowInsecure))
  ) {
    throw new TypeError(
      `endpoint must be https (http only on loopback or with allowInsecure): ${base.origin}`,
    );
  }
  return new URL('v1/token', base);
}
