import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient, type ClientOptions } from './client.js';

export interface AgentOptions extends ClientOptions {
  out: string;
  type: 'jwt' | 'x509';
  /** Write once and return (an init container), instead of keeping the files fresh. */
  once?: boolean;
  /** Stops the loop (e.g. on SIGTERM). */
  signal?: AbortSignal;
  onError?: (error: unknown) => void;
  onWrite?: (files: string[]) => void;
}

/** Readers never see a half-written file: write beside it, then rename over it. */
async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode });
  await rename(temporary, path);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * The sidecar: keeps `out/token` (and for x509 `svid.pem`, `svid-key.pem`, `bundle.pem`) fresh,
 * refreshing at 80 % of each credential's life and retrying with backoff on failure.
 */
export async function runAgent(options: AgentOptions): Promise<void> {
  const client = createClient(options);
  const now = options.now ?? Date.now;
  await mkdir(options.out, { recursive: true, mode: 0o700 });
  let backoffMs = 1000;
  while (!options.signal?.aborted) {
    try {
      let expiresAt: number;
      if (options.type === 'x509') {
        const svid = await client.getCertificate();
        const chain = [svid.certificatePem, ...svid.chainPem.filter((pem) => pem !== svid.certificatePem)].join('');
        await writeAtomically(join(options.out, 'svid-key.pem'), svid.privateKeyPem, 0o600);
        await writeAtomically(join(options.out, 'svid.pem'), chain, 0o644);
        await writeAtomically(join(options.out, 'bundle.pem'), svid.trustBundlePem.join(''), 0o644);
        await writeAtomically(join(options.out, 'token'), svid.certificatePem.trimEnd(), 0o644);
        options.onWrite?.(['svid-key.pem', 'svid.pem', 'bundle.pem', 'token']);
        expiresAt = svid.expiresAt;
      } else {
        const token = await client.getToken();
        await writeAtomically(join(options.out, 'token'), token, 0o600);
        options.onWrite?.(['token']);
        expiresAt = expiryOf(token) ?? now() + 60_000;
      }
      backoffMs = 1000;
      if (options.once) return;
      await sleep(Math.max(1000, (expiresAt - now()) * 0.8), options.signal);
    } catch (error) {
      if (options.once) throw error;
      options.onError?.(error);
      await sleep(backoffMs, options.signal);
      backoffMs = Math.min(backoffMs * 2, 60_000);
    }
  }
}

function expiryOf(token: string): number | undefined {
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    const exp = (payload as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
