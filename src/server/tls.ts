import { constants, createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '../observability/index.js';

/** `listen.tls`: file paths, re-read when they change (cert-manager rewrites them in place). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  clientCaFile?: string;
}

/** A pair that passed every check, ready for `server.setSecureContext`. */
export interface TlsMaterial {
  options: SecureContextOptions;
  /** Digest of the files' bytes, to notice a change without keeping the key around twice. */
  fingerprint: string;
  serialNumber: string;
  notAfter: string;
}

/** A certificate or key that cannot be served; the message never holds key material. */
export class TlsMaterialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsMaterialError';
  }
}

/**
 * TLS 1.2 and 1.3 only; no renegotiation (a client-initiated renegotiation costs the server a
 * handshake per request and has a history of attacks); the server picks the cipher order.
 */
const TLS_DEFAULTS: SecureContextOptions = {
  minVersion: 'TLSv1.2',
  honorCipherOrder: true,
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
};

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Digest of the raw files: the cheap check a poll does before any parsing. */
export async function fingerprintOf(
  files: TlsFiles,
): Promise<{ fingerprint: string; bytes: Buffer[] }> {
  const paths = [
    files.certFile,
    files.keyFile,
    ...(files.clientCaFile ? [files.clientCaFile] : []),
  ];
  const bytes = await Promise.all(paths.map((path) => readFile(path)));
  const hash = createHash('sha256');
  for (const part of bytes) hash.update(createHash('sha256').update(part).digest());
  return { fingerprint: hash.digest('hex'), bytes };
}

/**
 * Read and check the files: the leaf is currently valid, the key is the leaf's, and OpenSSL
 * accepts the whole context. Anything else is a {@link TlsMaterialError} naming the file.
 */
export async function loadTlsMaterial(
  files: TlsFiles,
  now: () => number = Date.now,
): Promise<TlsMaterial> {
  let read: Awaited<ReturnType<typeof fingerprintOf>>;
  try {
    read = await fingerprintOf(files);
  } catch (error) {
    throw new TlsMaterialError(
      `cannot read TLS files: ${(error as NodeJS.ErrnoException).code ?? 'error'} (${(error as NodeJS.ErrnoException).path ?? ''})`,
    );
  }
  const [certBytes, keyBytes, caBytes] = read.bytes as [Buffer, Buffer, Buffer | undefined];
  const leaf = currentLeaf(files, certBytes, now());
  checkKeyPair(files, leaf, keyBytes);
  if (caBytes && !caBytes.toString('utf8').includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsMaterialError(`${files.clientCaFile ?? ''} holds no PEM certificate`);
  }
  const options: SecureContextOptions = {
    ...TLS_DEFAULTS,
    cert: certBytes,
    key: keyBytes,
    ...(caBytes ? { ca: caBytes } : {}),
  };
  try {
    createSecureContext(options);
  } catch (error) {
    throw new TlsMaterialError(
      `TLS files rejected: ${(error as { code?: string }).code ?? 'invalid'}`,
    );
  }
  return {
    options,
    fingerprint: read.fingerprint,
    serialNumber: leaf.serialNumber,
    notAfter: new Date(leaf.validTo).toISOString(),
  };
}

/** The first certificate of the chain file, valid at `at`. */
function currentLeaf(files: TlsFiles, certBytes: Buffer, at: number): X509Certificate {
  const [first] = certBytes.toString('utf8').match(PEM_CERTIFICATE) ?? [];
  if (first === undefined) throw new TlsMaterialError(`${files.certFile} holds no PEM certificate`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(first);
  } catch {
    throw new TlsMaterialError(`${files.certFile}: the first certificate cannot be parsed`);
  }
  if (Date.parse(leaf.validTo) <= at)
    throw new TlsMaterialError(
      `${files.certFile}: certificate expired at ${new Date(leaf.validTo).toISOString()}`,
    );
  if (Date.parse(leaf.validFrom) > at)
    throw new TlsMaterialError(
      `${files.certFile}: certificate is not valid before ${new Date(leaf.validFrom).toISOString()}`,
    );
  return leaf;
}

function checkKeyPair(files: TlsFiles, leaf: X509Certificate, keyBytes: Buffer): void {
  let keyMatches: boolean;
  try {
    keyMatches = leaf.checkPrivateKey(createPrivateKey(keyBytes));
  } catch {
    throw new TlsMaterialError(`${files.keyFile}: not a readable private key (PEM, unencrypted)`);
  }
  if (!keyMatches)
    throw new TlsMaterialError(
      `${files.keyFile} does not belong to the certificate in ${files.certFile}`,
    );
}

export interface TlsReloader {
  /** The material in force. */
  current(): TlsMaterial;
  /** Check the files now (the timer does this every interval). */
  check(): Promise<void>;
  stop(): void;
}

/**
 * Poll the files (a watch misses Kubernetes' atomic symlink swaps of Secret volumes) and hand a
 * new, fully checked pair to `apply`; a pair that fails a check is logged once and the old one
 * stays in force, so a half-written rotation or an expired certificate never takes a listener down.
 */
export function watchTlsFiles(options: {
  files: TlsFiles;
  initial: TlsMaterial;
  apply: (material: TlsMaterial) => void;
  logger: Logger;
  intervalMs: number;
  now?: () => number;
}): TlsReloader {
  let current = options.initial;
  let lastSeen = options.initial.fingerprint;
  let checking: Promise<void> | undefined;
  const check = async (): Promise<void> => {
    let fingerprint: string;
    try {
      fingerprint = (await fingerprintOf(options.files)).fingerprint;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      if (lastSeen !== code)
        options.logger.warn(
          { code, certFile: options.files.certFile },
          'TLS files unreadable; keeping the current certificate',
        );
      lastSeen = code;
      return;
    }
    if (fingerprint === lastSeen) return;
    lastSeen = fingerprint;
    try {
      const material = await loadTlsMaterial(options.files, options.now);
      options.apply(material);
      current = material;
      options.logger.info(
        { serialNumber: material.serialNumber, notAfter: material.notAfter },
        'TLS certificate reloaded',
      );
    } catch (error) {
      const reason = error instanceof TlsMaterialError ? error.message : 'unexpected error';
      options.logger.warn(
        { reason, serialNumber: current.serialNumber },
        'new TLS files refused; keeping the current certificate',
      );
    }
  };
  const timer = setInterval(() => {
    checking ??= check().finally(() => (checking = undefined));
  }, options.intervalMs);
  timer.unref();
  return {
    current: () => current,
    check: () => (checking ??= check().finally(() => (checking = undefined))),
    stop: () => clearInterval(timer),
  };
}
