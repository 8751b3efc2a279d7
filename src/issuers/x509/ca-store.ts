import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createFileAtomic, makeDirectories, writeFileAtomic } from '../../files.js';
import { pemBlocks, toPem } from './der.js';

/**
 * The CA's certificates on disk, in `x509.dir`: `ca.pem` (the CA certificate Tessera signs
 * with) and `chain.pem` (the certificates above it, ending with the root; absent for a
 * self-signed CA). Certificates are public; the key stays with the key provider.
 */
export interface StoredCa {
  certificate: Uint8Array;
  /** Issuer first, root last; empty when `certificate` is itself the root. */
  chain: Uint8Array[];
}

export const CA_FILE = 'ca.pem';
const CHAIN_FILE = 'chain.pem';

/** `x509.dir`, else `ca/` beside the local key directory (`./.tessera/ca` by default). */
export function caDirectory(dir: string | undefined, keysDir = './.tessera/keys'): string {
  return dir ?? join(dirname(keysDir), 'ca');
}

export async function readStoredCa(dir: string): Promise<StoredCa | undefined> {
  let caText: string;
  try {
    caText = await readFile(join(dir, CA_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const [certificate, ...extra] = pemBlocks(caText);
  if (!certificate || extra.length)
    throw new Error(`${join(dir, CA_FILE)} must hold exactly one certificate`);
  let chainText = '';
  try {
    chainText = await readFile(join(dir, CHAIN_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return { certificate, chain: pemBlocks(chainText) };
}

export async function writeStoredCa(dir: string, ca: StoredCa): Promise<void> {
  makeDirectories(dir, 0o755);
  if (ca.chain.length)
    await writeFileAtomic(join(dir, CHAIN_FILE), ca.chain.map((der) => toPem(der)).join(''), 0o644);
  else await rm(join(dir, CHAIN_FILE), { force: true });
  await writeFileAtomic(join(dir, CA_FILE), toPem(ca.certificate), 0o644);
}

/**
 * Stores a new self-signed CA unless the directory already has one: `false` when another replica
 * sharing the directory stored its own first (read it with {@link readStoredCa} and use that).
 */
export async function createStoredCa(dir: string, certificate: Uint8Array): Promise<boolean> {
  makeDirectories(dir, 0o755);
  // A self-signed CA has no chain: one left from an earlier CA would be read with it.
  await rm(join(dir, CHAIN_FILE), { force: true });
  return createFileAtomic(join(dir, CA_FILE), toPem(certificate), 0o644);
}
