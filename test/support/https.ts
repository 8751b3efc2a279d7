import { request as httpsRequest, type Agent } from 'node:https';

/** What a TLS client presents and trusts. */
export interface TlsClientOptions {
  ca: string;
  cert?: string;
  key?: string;
  /** A keep-alive agent; default: a fresh connection per request. */
  agent?: Agent;
}

/** The request bodies the tests send: form strings and URLSearchParams. */
function bodyText(body: RequestInit['body']): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || body instanceof URLSearchParams) return body.toString();
  throw new TypeError('httpsFetch sends string or URLSearchParams bodies only');
}

/**
 * `fetch` over node:https with a private CA (and optionally a client certificate), shaped for
 * openid-client's `customFetch` and jose: the platform fetch cannot be given a CA per call.
 */
export function httpsFetch(tls: TlsClientOptions) {
  return async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    const headers = new Headers(init.headers);
    const body = bodyText(init.body);
    if (body !== undefined && !headers.has('content-type'))
      headers.set('content-type', 'application/x-www-form-urlencoded');
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: init.method ?? 'GET',
          headers: Object.fromEntries(headers),
          ca: tls.ca,
          ...(tls.cert && { cert: tls.cert, key: tls.key }),
          agent: tls.agent ?? false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (value !== undefined)
                responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
            }
            resolve(
              new Response(chunks.length > 0 ? Buffer.concat(chunks) : null, {
                status: res.statusCode ?? 0,
                headers: responseHeaders,
              }),
            );
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  };
}
