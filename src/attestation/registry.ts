import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';

/**
 * The two reads of the OCI distribution API a signature check needs: a manifest by tag and a blob
 * by digest. Every read has a deadline and a size cap: a registry that sends a huge or endless
 * answer is cut off, never buffered. Redirects (blob stores) are followed a few times, and the
 * registry's credentials are never sent to another host.
 */

const REGISTRY_TIMEOUT_MS = 5_000;
export const MAX_MANIFEST_BYTES = 256 * 1024;
export const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_REDIRECTS = 3;

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

export interface RegistryAccess {
  /** PEM bundle to trust for this registry (in addition to nothing else). */
  ca?: string;
  /** Plain http (tests, a registry on loopback). */
  insecure?: boolean;
  /** `Authorization` header value (Basic or Bearer). */
  authorization?: string;
}

export class RegistryError extends Error {
  readonly kind:
    'not-found' | 'unauthorized' | 'http' | 'too-large' | 'timeout' | 'network' | 'malformed';
  /** `WWW-Authenticate` of a 401. */
  readonly challenge: string | undefined;
  constructor(kind: RegistryError['kind'], message: string, challenge?: string) {
    super(message);
    this.name = 'RegistryError';
    this.kind = kind;
    this.challenge = challenge;
  }
}

export interface RegistryClient {
  /** The manifest at `reference` (a tag), or `undefined` when the registry has none (404). */
  manifest(registry: string, path: string, reference: string): Promise<Buffer | undefined>;
  blob(registry: string, path: string, digest: string, maxBytes: number): Promise<Buffer>;
}

export function createRegistryClient(
  access: (registry: string) => RegistryAccess,
  timeoutMs = REGISTRY_TIMEOUT_MS,
): RegistryClient {
  const base = (registry: string) =>
    `${access(registry).insecure ? 'http' : 'https'}://${registry}/v2/`;
  const tokens = new Map<string, { value: string; expiresAt: number }>();

  /** A read, answering the registry's Bearer challenge (the Docker token flow) once when it sends one. */
  async function read(
    registry: string,
    path: string,
    url: URL,
    limits: { accept: string; maxBytes: number },
  ): Promise<Buffer> {
    const given = access(registry);
    const key = `${registry} repository:${path}:pull`;
    const cached = tokens.get(key);
    const authorization =
      cached && cached.expiresAt > Date.now() ? `Bearer ${cached.value}` : given.authorization;
    try {
      return await get(
        url,
        { ...given, ...(authorization ? { authorization } : {}) },
        { ...limits, timeoutMs },
      );
    } catch (error) {
      const challenge =
        error instanceof RegistryError && error.kind === 'unauthorized'
          ? bearerChallenge(error.challenge)
          : undefined;
      if (!challenge) throw error;
      const token = await fetchToken(challenge, given, `repository:${path}:pull`, timeoutMs);
      if (tokens.size >= 1000) tokens.clear();
      tokens.set(key, token);
      return get(
        url,
        { ...given, authorization: `Bearer ${token.value}` },
        { ...limits, timeoutMs },
      );
    }
  }

  return {
    async manifest(registry, path, reference) {
      try {
        return await read(
          registry,
          path,
          new URL(`${path}/manifests/${encodeURIComponent(reference)}`, base(registry)),
          {
            accept: MANIFEST_TYPES.join(', '),
            maxBytes: MAX_MANIFEST_BYTES,
          },
        );
      } catch (error) {
        if (error instanceof RegistryError && error.kind === 'not-found') return undefined;
        throw error;
      }
    },
    blob: (registry, path, digest, maxBytes) =>
      read(registry, path, new URL(`${path}/blobs/${digest}`, base(registry)), {
        accept: '*/*',
        maxBytes,
      }),
  };
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters; `undefined` for any other scheme. */
function bearerChallenge(
  header: string | undefined,
): { realm: string; service?: string; scope?: string } | undefined {
  if (!header || !/^Bearer\s/i.test(header) || header.length > 2048) return undefined;
  const params: Record<string, string> = {};
  for (const match of header.slice(7).matchAll(/([A-Za-z]+)="([^"]*)"/g))
    params[(match[1] as string).toLowerCase()] = match[2] as string;
  if (!params.realm) return undefined;
  return {
    realm: params.realm,
    ...(params.service ? { service: params.service } : {}),
    ...(params.scope ? { scope: params.scope } : {}),
  };
}

const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;

/** The token endpoint named by a challenge: https (http only for an insecure registry), the registry's CA, Basic credentials if any. */
async function fetchToken(
  challenge: { realm: string; service?: string; scope?: string },
  access: RegistryAccess,
  scope: string,
  timeoutMs: number,
) {
  if (!URL.canParse(challenge.realm))
    throw new RegistryError('malformed', 'token realm is not a URL');
  const url = new URL(challenge.realm);
  if (url.protocol !== 'https:' && !(access.insecure && url.protocol === 'http:'))
    throw new RegistryError('http', 'token realm is not https');
  if (challenge.service) url.searchParams.set('service', challenge.service);
  url.searchParams.set('scope', challenge.scope ?? scope);
  const basic = access.authorization?.startsWith('Basic ') ? access.authorization : undefined;
  const body = await get(
    url,
    {
      ...(access.ca ? { ca: access.ca } : {}),
      ...(access.insecure ? { insecure: true } : {}),
      ...(basic ? { authorization: basic } : {}),
    },
    {
      accept: 'application/json',
      maxBytes: MAX_TOKEN_RESPONSE_BYTES,
      timeoutMs,
    },
  );
  const { value, lifetime } = tokenOf(body);
  // Renewed a little early, so a token never expires between our check and the registry's.
  return { value, expiresAt: Date.now() + Math.max(0, lifetime - 10) * 1000 };
}

/** A bearer token: printable, no whitespace, at most 16 KiB. */
const bearerSchema = z.string().min(1).max(16_384).regex(/^\S+$/);
/** Docker's token response: `token` (or OAuth's `access_token`) and an optional lifetime, 60 s by default, at most 1 h. */
const tokenResponseSchema = z.object({
  token: z.unknown().optional(),
  access_token: z.unknown().optional(),
  expires_in: z.unknown().optional(),
});

function tokenOf(body: Buffer): { value: string; lifetime: number } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RegistryError('malformed', 'token response is not JSON');
  }
  const response = tokenResponseSchema.safeParse(json);
  const value = bearerSchema.safeParse(
    typeof response.data?.token === 'string' ? response.data.token : response.data?.access_token,
  );
  if (!value.success) throw new RegistryError('malformed', 'token response has no token');
  const expiresIn = response.data?.expires_in;
  return {
    value: value.data,
    lifetime: typeof expiresIn === 'number' && expiresIn > 0 ? Math.min(expiresIn, 3600) : 60,
  };
}

async function get(
  url: URL,
  access: RegistryAccess,
  limits: { accept: string; maxBytes: number; timeoutMs: number },
): Promise<Buffer> {
  const deadline = Date.now() + limits.timeoutMs;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
    const sameHost = current.host === url.host;
    const answer = await once(
      current,
      { ...access, ...(sameHost ? {} : { authorization: undefined, ca: undefined }) },
      limits,
      deadline,
    );
    if ('redirect' in answer) {
      const next = new URL(answer.redirect, current);
      if (next.protocol !== 'https:' && !(access.insecure && next.protocol === 'http:'))
        throw new RegistryError('http', 'redirect to a non-https URL refused');
      current = next;
      continue;
    }
    return answer.body;
  }
  throw new RegistryError('http', 'too many redirects');
}

function once(
  url: URL,
  access: RegistryAccess,
  limits: { accept: string; maxBytes: number },
  deadline: number,
): Promise<{ body: Buffer } | { redirect: string }> {
  const client = url.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = { accept: limits.accept, 'user-agent': 'tessera' };
  if (access.authorization) headers.authorization = access.authorization;
  return new Promise((resolve, reject) => {
    const request = client.request(
      url,
      { method: 'GET', agent: false, headers, ...(access.ca ? { ca: access.ca } : {}) },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location) {
          response.resume();
          return resolve({ redirect: response.headers.location });
        }
        if (status === 404) {
          response.resume();
          return reject(new RegistryError('not-found', 'HTTP 404'));
        }
        if (status === 401) {
          response.resume();
          const challenge = response.headers['www-authenticate'];
          return reject(
            new RegistryError(
              'unauthorized',
              'HTTP 401',
              typeof challenge === 'string' ? challenge : undefined,
            ),
          );
        }
        if (status !== 200) {
          response.resume();
          return reject(new RegistryError('http', `HTTP ${status}`));
        }
        const declared = Number(response.headers['content-length'] ?? 0);
        if (declared > limits.maxBytes) {
          request.destroy();
          return reject(
            new RegistryError(
              'too-large',
              `${declared} bytes declared, at most ${limits.maxBytes} read`,
            ),
          );
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > limits.maxBytes)
            return void request.destroy(
              new RegistryError('too-large', `more than ${limits.maxBytes} bytes`),
            );
          chunks.push(chunk);
        });
        response.on('end', () => resolve({ body: Buffer.concat(chunks) }));
        response.on('error', (error) => reject(asRegistryError(error)));
      },
    );
    const timer = setTimeout(
      () => request.destroy(new RegistryError('timeout', 'no complete answer in time')),
      Math.max(1, deadline - Date.now()),
    );
    request.on('error', (error) => reject(asRegistryError(error)));
    request.on('close', () => clearTimeout(timer));
    request.end();
  });
}

function asRegistryError(error: unknown): RegistryError {
  if (error instanceof RegistryError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  return new RegistryError(
    'network',
    typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown error',
  );
}
