import { mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
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

interface OutputFile {
  name: string;
  content: string;
  mode: number;
}

/**
 * Publishes a set of files at once, the way the kubelet updates projected volumes: they are
 * written into a fresh directory, `..data` is switched to it with one rename, and each public
 * name is a symlink through `..data`. A reader never pairs a new key with an old certificate.
 */
async function publish(out: string, files: OutputFile[], generation: number): Promise<void> {
  const version = `..${Date.now()}-${process.pid}-${generation}`;
  await mkdir(join(out, version), { mode: 0o700 });
  for (const file of files) await writeFile(join(out, version, file.name), file.content, { mode: file.mode });
  const previous = await readlink(join(out, '..data')).catch(() => undefined);
  await symlink(version, join(out, '..data_tmp'));
  await rename(join(out, '..data_tmp'), join(out, '..data'));
  for (const file of files) {
    const link = join(out, file.name);
    const target = await readlink(link).catch(() => undefined);
    if (target === join('..data', file.name)) continue;
    // A plain file from an older agent, or a missing link: replace it atomically as well.
    await symlink(join('..data', file.name), `${link}.tmp`);
    await rename(`${link}.tmp`, link);
  }
  if (previous && previous !== version) await rm(join(out, previous), { recursive: true, force: true });
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * The sidecar: keeps `out/token` (and for x509 `svid.pem`, `svid-key.pem`, `bundle.pem`) fresh,
 * renewing when the client's refresh point (80 % of each credential's life) is reached and
 * retrying with backoff on failure.
 */
export async function runAgent(options: AgentOptions): Promise<void> {
  const client = createClient(options);
  const now = options.now ?? Date.now;
  await mkdir(options.out, { recursive: true, mode: 0o700 });
  let backoffMs = 1000;
  let generation = 0;
  while (!options.signal?.aborted) {
    try {
      let renewAt: number;
      if (options.type === 'x509') {
        const svid = await client.getCertificate();
        const chain = [svid.certificatePem, ...svid.chainPem.filter((pem) => pem !== svid.certificatePem)].join('');
        const files: OutputFile[] = [
          { name: 'svid.pem', content: chain, mode: 0o644 },
          { name: 'svid-key.pem', content: svid.privateKeyPem, mode: 0o600 },
          { name: 'bundle.pem', content: svid.trustBundlePem.join(''), mode: 0o644 },
          { name: 'token', content: svid.certificatePem.trimEnd(), mode: 0o644 },
        ];
        await publish(options.out, files, generation++);
        options.onWrite?.(files.map((file) => file.name));
        const lifetime = svid.expiresAt - now();
        renewAt = now() + lifetime * 0.8;
      } else {
        const token = await client.getToken();
        await publish(options.out, [{ name: 'token', content: token, mode: 0o600 }], generation++);
        options.onWrite?.(['token']);
        renewAt = client.tokenRefreshAt() ?? now() + 60_000;
      }
      backoffMs = 1000;
      if (options.once) return;
      await sleep(Math.max(1000, renewAt - now()), options.signal);
    } catch (error) {
      if (options.once) throw error;
      options.onError?.(error);
      await sleep(backoffMs, options.signal);
      backoffMs = Math.min(backoffMs * 2, 60_000);
    }
  }
}
