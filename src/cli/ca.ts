import { createHash, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { durationSchema, type Config } from '../config/index.js';
import {
  CA_FILE,
  CA_KEY_NAME,
  caDirectory,
  checkImportedCa,
  createCaCsr,
  createSelfSignedCa,
  pemBlocks,
  readStoredCa,
  spkiOf,
  writeStoredCa,
} from '../issuers/index.js';
import { createKeyProvider, type KeyProvider } from '../keys/index.js';
import { createLogger } from '../observability/index.js';
import { escapeControl } from '../terminal/index.js';

/** Opens the configured key provider for a one-shot command (no rotation timer). */
export type OpenProvider = (config: Config) => Promise<KeyProvider>;

const openConfiguredProvider: OpenProvider = (config) =>
  createKeyProvider(config.keys, {
    logger: createLogger({ level: 'warn', destination: process.stderr }),
    autoRotate: false,
    applyAtStart: false,
  });

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function withCaKey<T>(
  config: Config,
  open: OpenProvider,
  run: (provider: KeyProvider) => Promise<T>,
): Promise<T> {
  const provider = await open(config);
  try {
    return await run(provider);
  } finally {
    await provider.close();
  }
}

function describe(der: Uint8Array): string {
  const certificate = new X509Certificate(der);
  return (
    [
      `subject:     ${certificate.subject.replace(/\n/g, ', ')}`,
      `issuer:      ${certificate.issuer.replace(/\n/g, ', ')}`,
      `valid:       ${new Date(certificate.validFrom).toISOString()} → ${new Date(certificate.validTo).toISOString()}`,
      `serial:      ${certificate.serialNumber}`,
      `sha256:      ${createHash('sha256').update(der).digest('hex')}`,
    ]
      // Subject and issuer come from an imported certificate: printed escaped.
      .map(escapeControl)
      .join('\n')
  );
}

/**
 * `tessera ca init | csr | import | show`: set up the X.509 CA that signs SVIDs, with its key
 * held by the configured key provider (see docs/x509.md).
 */
export function registerCaCommands(
  program: Command,
  loadConfig: () => Config,
  open: OpenProvider = openConfiguredProvider,
): void {
  const ca = program.command('ca').description('the X.509 CA that signs SPIFFE X.509-SVIDs');

  ca.command('init')
    .description('create a self-signed root CA for the provider-held x509-ca key')
    .option('--force', 'replace an existing CA certificate')
    .addOption(new Option('--ttl <duration>', 'lifetime of the root (default: x509.caTtl)'))
    .action((options: { force?: boolean; ttl?: string }) => initCa(loadConfig(), open, options));

  ca.command('csr')
    .description(
      'print a CSR for the provider-held x509-ca key, for an enterprise root to sign as an intermediate',
    )
    .option('--out <file>', 'write the CSR to FILE instead of stdout')
    .action((options: { out?: string }) => printCaCsr(loadConfig(), open, options));

  ca.command('import')
    .description(
      'install an intermediate CA certificate issued for the x509-ca key (from `ca csr`)',
    )
    .argument('<cert>', 'the intermediate certificate (PEM; may be followed by its chain)')
    .option('--chain <file>', 'the issuing chain up to and including the root (PEM)')
    .action((certFile: string, options: { chain?: string }) =>
      importCa(loadConfig(), open, certFile, options),
    );

  ca.command('show')
    .description('print the CA certificate, its chain, and whether it matches the provider key')
    .action(() => showCa(loadConfig(), open));
}

const directory = (config: Config) => caDirectory(config.x509.dir, config.keys.dir);

async function initCa(
  config: Config,
  open: OpenProvider,
  options: { force?: boolean; ttl?: string },
): Promise<void> {
  const dir = directory(config);
  if (!options.force && (await readStoredCa(dir)))
    throw new Error(`a CA already exists in ${dir}; pass --force to replace it`);
  const ttlSeconds =
    options.ttl === undefined ? config.x509.caTtl : durationSchema.parse(options.ttl);
  const stored = await withCaKey(config, open, async (provider) => {
    const key = await provider.namedKey(CA_KEY_NAME, 'ES256');
    return createSelfSignedCa({
      key,
      trustDomain: config.x509.trustDomain,
      ttlSeconds,
      now: nowSeconds(),
    });
  });
  await writeStoredCa(dir, stored);
  process.stdout.write(
    `created ${join(dir, CA_FILE)} (self-signed root, trust domain ${config.x509.trustDomain})\n${describe(stored.certificate)}\n`,
  );
}

async function printCaCsr(
  config: Config,
  open: OpenProvider,
  options: { out?: string },
): Promise<void> {
  const pem = await withCaKey(config, open, async (provider) =>
    createCaCsr({
      key: await provider.namedKey(CA_KEY_NAME, 'ES256'),
      trustDomain: config.x509.trustDomain,
    }),
  );
  if (options.out) await writeFile(options.out, pem, { mode: 0o644 });
  else process.stdout.write(pem);
}

async function importCa(
  config: Config,
  open: OpenProvider,
  certFile: string,
  options: { chain?: string },
): Promise<void> {
  const certificates = [
    ...pemBlocks(await readFile(certFile, 'utf8')),
    ...(options.chain ? pemBlocks(await readFile(options.chain, 'utf8')) : []),
  ];
  const stored = await withCaKey(config, open, async (provider) =>
    checkImportedCa({
      key: await provider.namedKey(CA_KEY_NAME, 'ES256'),
      certificates,
      trustDomain: config.x509.trustDomain,
      now: nowSeconds(),
    }),
  );
  const dir = directory(config);
  await writeStoredCa(dir, stored);
  process.stdout.write(
    `imported into ${dir} (chain of ${stored.chain.length} above it); restart running brokers to use it\n${describe(stored.certificate)}\n`,
  );
}

async function showCa(config: Config, open: OpenProvider): Promise<void> {
  const dir = directory(config);
  const stored = await readStoredCa(dir);
  if (!stored)
    throw new Error(
      `no CA in ${dir}; run \`tessera ca init\` or \`tessera ca csr\` + \`tessera ca import\``,
    );
  const matches = await withCaKey(config, open, async (provider) => {
    const spki = spkiOf(await provider.namedKey(CA_KEY_NAME, 'ES256'));
    return Buffer.from(
      new X509Certificate(stored.certificate).publicKey.export({ type: 'spki', format: 'der' }),
    ).equals(Buffer.from(spki));
  });
  const lines = [
    `CA (${join(dir, CA_FILE)}), trust domain ${config.x509.trustDomain}:`,
    describe(stored.certificate),
    `key:         ${matches ? 'matches' : 'DOES NOT MATCH'} the ${config.keys.provider} provider's ${CA_KEY_NAME} key`,
  ];
  stored.chain.forEach((der, index) =>
    lines.push(
      `chain[${index}]${index === stored.chain.length - 1 ? ' (root)' : ''}:`,
      describe(der),
    ),
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  if (!matches) process.exitCode = 1;
}
