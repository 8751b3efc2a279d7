import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Certificates made by the openssl command, as an operator (or cert-manager) would: a CA, server
 * certificates for 127.0.0.1/localhost, client certificates (an X.509-SVID-like one with a SPIFFE
 * URI SAN), and expired ones, with `openssl ca` so validity dates can be in the past.
 */
export interface PkiCa {
  name: string;
  dir: string;
  certFile: string;
  keyFile: string;
  certPem: string;
}

export interface PkiLeaf {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

const run = (args: string[]): void =>
  void execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** `openssl ca` date format. */
const stamp = (date: Date): string => `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export function createPkiCa(parent: string, name: string): PkiCa {
  const dir = join(parent, name);
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  run([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-subj',
    `/CN=${name}`,
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = tessera_test',
      '[tessera_test]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'new_certs_dir = $dir',
      'serial = $dir/serial',
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      'copy_extensions = none',
      '[any]',
      'commonName = optional',
      'organizationName = optional',
      '',
    ].join('\n'),
  );
  return { name, dir, certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

export interface LeafOptions {
  /** File name stem, unique within the CA directory. */
  name: string;
  usage: 'server' | 'client';
  /** `/CN=…/O=…`; default `/CN=<name>`. */
  subject?: string;
  /** Extra SANs, e.g. `URI:spiffe://example.org/ns/a/sa/b`. Servers get 127.0.0.1 and localhost. */
  sans?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

export function issuePkiLeaf(ca: PkiCa, options: LeafOptions): PkiLeaf {
  const base = join(ca.dir, options.name);
  const keyFile = `${base}.key`;
  const certFile = `${base}.crt`;
  const subject = options.subject ?? `/CN=${options.name}`;
  run([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    `${base}.csr`,
    '-subj',
    subject,
  ]);
  const sans = [
    ...(options.usage === 'server' ? ['IP:127.0.0.1', 'DNS:localhost'] : []),
    ...(options.sans ?? []),
  ];
  writeFileSync(
    `${base}.ext`,
    [
      '[leaf]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      `extendedKeyUsage = ${options.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
      ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []),
      '',
    ].join('\n'),
  );
  const now = Date.now();
  run([
    'ca',
    '-batch',
    '-notext',
    '-config',
    join(ca.dir, 'ca.cnf'),
    '-cert',
    ca.certFile,
    '-keyfile',
    ca.keyFile,
    '-in',
    `${base}.csr`,
    '-out',
    certFile,
    '-startdate',
    stamp(options.notBefore ?? new Date(now - HOUR)),
    '-enddate',
    stamp(options.notAfter ?? new Date(now + 30 * DAY)),
    '-extfile',
    `${base}.ext`,
    '-extensions',
    'leaf',
  ]);
  return {
    certFile,
    keyFile,
    certPem: readFileSync(certFile, 'utf8'),
    keyPem: readFileSync(keyFile, 'utf8'),
  };
}

/** The serial number as Node's X509Certificate prints it. */
export function serialOf(certPem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-serial'], { input: certPem })
    .toString()
    .trim()
    .replace(/^serial=/, '')
    .toUpperCase();
}
