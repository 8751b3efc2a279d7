import { chmod, chown, mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirectories } from '../files.js';
import { createClient, isRetryable, type ClientOptions, type TesseraClient } from './client.js';

export interface AgentOptions extends ClientOptions {
  out: string;
  type: 'jwt' | 'x509';
  /** Write once and return (an init container), instead of keeping the files fresh. */
  once?: boolean;
  /**
   * With `once`: keep retrying a broker that cannot be reached (or answers 5xx/429) with backoff
   * for this long before giving up (default 60 s). A refusal (4xx) fails at once.
   */
  deadlineMs?: number;
  /**
   * A group ID (the pod's `fsGroup`) the files and their directory are given to, so an app
   * container running as another user in that group can read them.
   */
  group?: number;
  /**
   * Mode of the files (default 0640 with `group`, else 0600 for the token and key and 0644 for
   * certificates). The private key never gets permissions for others, whatever is asked.
   */
  mode?: number;
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

interface Permissions {
  group?: number;
  dirMode: number;
}

/**
 * Publishes a set of files at once, the way the kubelet updates projected volumes: they are
 * written into a fresh directory, `..data` is switched to it with one rename, and each public
 * name is a symlink through `..data`. A reader never pairs a new key with an old certificate.
 */
async function publish(
  out: string,
  files: OutputFile[],
  generation: number,
  permissions: Permissions,
): Promise<void> {
  const version = `..${Date.now()}-${process.pid}-${generation}`;
  await mkdir(join(out, version), { mode: permissions.dirMode });
  // Explicit chown/chmod: the umask would otherwise strip the group bits asked for.
  if (permissions.group !== undefined) await chown(join(out, version), -1, permissions.group);
  await chmod(join(out, version), permissions.dirMode);
  for (const file of files) {
    const path = join(out, version, file.name);
    await writeFile(path, file.content, { mode: 0o600 });
    if (permissions.group !== undefined) await chown(path, -1, permissions.group);
    await chmod(path, file.mode);
  }
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
  if (previous && previous !== version)
    await rm(join(out, previous), { recursive: true, force: true });
}

/** File modes for the options: group-readable with a group, the key never readable by others. */
function fileModes(options: Pick<AgentOptions, 'group' | 'mode'>): {
  token: number;
  certificate: number;
  key: number;
  dir: number;
} {
  const base = options.mode ?? (options.group !== undefined ? 0o640 : undefined);
  if (base === undefined) return { token: 0o600, certificate: 0o644, key: 0o600, dir: 0o700 };
  if (!Number.isInteger(base) || base < 0 || base > 0o777)
    throw new TypeError(`mode must be an octal file mode such as 0640, not ${String(base)}`);
  const mode = base | 0o600;
  // A directory needs x wherever its files need r.
  const dir = 0o700 | (mode & 0o040 ? 0o050 : 0) | (mode & 0o004 ? 0o005 : 0);
  return { token: mode, certificate: mode, key: mode & 0o770, dir };
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
 * retrying with backoff on failure (the files keep the last valid credential meanwhile). With
 * `once` (an init container) it returns after the first write, retrying a broker that is not
 * there yet until `deadlineMs`.
 */
export async function runAgent(options: AgentOptions): Promise<void> {
  const modes = fileModes(options);
  const now = options.now ?? Date.now;
  await createOutputDir(options, modes.dir);
  const writer: Writer = {
    client: createClient(options),
    options,
    modes,
    now,
    permissions: { group: options.group, dirMode: modes.dir },
    generation: 0,
  };
  const giveUpAt = now() + (options.deadlineMs ?? 60_000);
  let backoffMs = 1000;
  while (!options.signal?.aborted) {
    try {
      const renewAt = options.type === 'x509' ? await writeSvid(writer) : await writeToken(writer);
      backoffMs = 1000;
      if (options.once) return;
      await sleep(Math.max(1000, renewAt - now()), options.signal);
    } catch (error) {
      // The projected token may not be mounted yet when an init container starts.
      const transient = isRetryable(error) || (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (options.once && (!transient || now() + backoffMs > giveUpAt)) throw error;
      options.onError?.(error);
      await sleep(backoffMs, options.signal);
      backoffMs = Math.min(backoffMs * 2, options.once ? 10_000 : 60_000);
    }
  }
}

/** The output directory, given to `group` when the agent creates it. */
async function createOutputDir(
  options: Pick<AgentOptions, 'out' | 'group'>,
  mode: number,
): Promise<void> {
  // One level at a time: Node's recursive mkdir never settles for a path under /proc.
  const created = makeDirectories(options.out, mode);
  if (created !== undefined && options.group !== undefined) {
    await chown(options.out, -1, options.group);
    await chmod(options.out, mode);
  }
}

/** What one write of the agent's files needs; `generation` names each published version. */
interface Writer {
  client: TesseraClient;
  options: AgentOptions;
  modes: ReturnType<typeof fileModes>;
  now: () => number;
  permissions: Permissions;
  generation: number;
}

/** Writes a fresh X.509-SVID, its key and the trust bundle; returns when to renew (at 80 % of its life). */
async function writeSvid(writer: Writer): Promise<number> {
  const { client, options, modes, now } = writer;
  const svid = await client.getCertificate();
  const chain = [
    svid.certificatePem,
    ...svid.chainPem.filter((pem) => pem !== svid.certificatePem),
  ].join('');
  const files: OutputFile[] = [
    { name: 'svid.pem', content: chain, mode: modes.certificate },
    { name: 'svid-key.pem', content: svid.privateKeyPem, mode: modes.key },
    { name: 'bundle.pem', content: svid.trustBundlePem.join(''), mode: modes.certificate },
    { name: 'token', content: svid.certificatePem.trimEnd(), mode: modes.certificate },
  ];
  await publish(options.out, files, writer.generation++, writer.permissions);
  options.onWrite?.(files.map((file) => file.name));
  return now() + (svid.expiresAt - now()) * 0.8;
}

/** Writes a fresh token; returns when the client would refresh it. */
async function writeToken(writer: Writer): Promise<number> {
  const { client, options, modes, now } = writer;
  const token = await client.refreshToken();
  await publish(
    options.out,
    [{ name: 'token', content: token, mode: modes.token }],
    writer.generation++,
    writer.permissions,
  );
  options.onWrite?.(['token']);
  return client.tokenRefreshAt() ?? now() + 60_000;
}
