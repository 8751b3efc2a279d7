import 'reflect-metadata';
import { createPublicKey, randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import type { SigningKey } from '../../keys/index.js';
import type { StoredCa } from './ca-store.js';
import { keyIdentifier } from './leaf-der.js';
import { bridgeKey } from './webcrypto-bridge.js';

/**
 * CA setup with @peculiar/x509 (slow but rare): a self-signed root for the provider key,
 * a CSR for an enterprise root to sign, and the checks on an intermediate brought back.
 */

const CA_KEY_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
/** The root's notBefore is backdated so leaves backdated by 30 s still nest inside it. */
const CA_BACKDATE_SECONDS = 300;
const MAX_CHAIN_DEPTH = 8;

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const caName = (trustDomain: string, kind: 'root' | 'intermediate') =>
  new x509.Name([
    { CN: [`Tessera ${kind === 'root' ? 'CA' : 'intermediate CA'} ${trustDomain}`] },
    { O: ['Tessera'] },
  ]);

/** SHA-1 of the subjectPublicKey bits of an SPKI (RFC 5280 method 1). */
function spkiKeyIdentifier(spki: Uint8Array): Uint8Array {
  const info = AsnConvert.parse(spki, SubjectPublicKeyInfo);
  return keyIdentifier(new Uint8Array(info.subjectPublicKey));
}

export async function createSelfSignedCa(options: {
  key: SigningKey;
  trustDomain: string;
  ttlSeconds: number;
  now: number;
}): Promise<StoredCa> {
  const bridged = bridgeKey(options.key);
  const name = caName(options.trustDomain, 'root');
  const serial = randomBytes(16);
  // Positive and a full 16 bytes: the top bit clear, the next one set.
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  const ski = hex(spkiKeyIdentifier(bridged.spki));
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: hex(serial),
      subject: name,
      issuer: name,
      notBefore: new Date((options.now - CA_BACKDATE_SECONDS) * 1000),
      notAfter: new Date((options.now + options.ttlSeconds) * 1000),
      publicKey: bridged.spki,
      signingKey: bridged.keys.privateKey,
      signingAlgorithm: bridged.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(CA_KEY_USAGE, true),
        new x509.SubjectKeyIdentifierExtension(ski),
        new x509.AuthorityKeyIdentifierExtension(ski),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `spiffe://${options.trustDomain}` },
        ]),
      ],
    },
    bridged.crypto,
  );
  return { certificate: new Uint8Array(certificate.rawData), chain: [] };
}

/** A PKCS#10 request for the provider key, for an enterprise root to sign as an intermediate. */
export async function createCaCsr(options: {
  key: SigningKey;
  trustDomain: string;
}): Promise<string> {
  const bridged = bridgeKey(options.key);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: caName(options.trustDomain, 'intermediate'),
      keys: bridged.keys,
      signingAlgorithm: bridged.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(CA_KEY_USAGE, true),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `spiffe://${options.trustDomain}` },
        ]),
      ],
    },
    bridged.crypto,
  );
  return csr.toString('pem') + '\n';
}

/** Why `certificate` is unusable as Tessera's CA, or `undefined`. */
function caProblem(certificate: x509.X509Certificate, now: number): string | undefined {
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) return 'is not a CA certificate (basicConstraints CA:TRUE missing)';
  const usages = certificate.getExtension(x509.KeyUsagesExtension);
  if (usages && !(usages.usages & x509.KeyUsageFlags.keyCertSign))
    return 'does not allow keyCertSign';
  if (certificate.notBefore.getTime() > now * 1000)
    return `is not valid before ${certificate.notBefore.toISOString()}`;
  if (certificate.notAfter.getTime() <= now * 1000)
    return `expired at ${certificate.notAfter.toISOString()}`;
  return undefined;
}

const samePublicKey = (a: Uint8Array, b: Uint8Array): boolean => {
  const jwk = (spki: Uint8Array) =>
    createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({
      format: 'jwk',
    });
  const [left, right] = [jwk(a), jwk(b)];
  return (
    left.kty === right.kty &&
    left.x === right.x &&
    left.y === right.y &&
    left.n === right.n &&
    left.e === right.e
  );
};

async function isSelfSigned(certificate: x509.X509Certificate): Promise<boolean> {
  return (
    certificate.subject === certificate.issuer &&
    (await certificate.verify({ signatureOnly: true }))
  );
}

/**
 * Checks an intermediate (or root) issued for the provider key: same public key, a usable CA
 * certificate, SPIFFE trust domain consistent, and a chain that verifies up to a self-signed
 * root. Returns the certificates ordered for storage. Throws an Error with the reason.
 */
export async function checkImportedCa(options: {
  key: SigningKey;
  certificates: Uint8Array[];
  trustDomain: string;
  now: number;
}): Promise<StoredCa> {
  const [first, ...rest] = options.certificates.map((der) => new x509.X509Certificate(der));
  if (!first) throw new Error('no certificate found (expected PEM)');
  if (!samePublicKey(new Uint8Array(first.publicKey.rawData), bridgeKey(options.key).spki)) {
    throw new Error(
      'the certificate is not for the x509-ca key of this key provider (public keys differ); make it from `tessera ca csr`',
    );
  }
  const problem = caProblem(first, options.now);
  if (problem) throw new Error(`the certificate ${problem}`);
  const uris =
    first
      .getExtension(x509.SubjectAlternativeNameExtension)
      ?.names.items.filter((name) => name.type === 'url') ?? [];
  const foreign = uris.find(
    (name) =>
      name.value.startsWith('spiffe://') && name.value !== `spiffe://${options.trustDomain}`,
  );
  if (foreign)
    throw new Error(
      `the certificate names SPIFFE trust domain ${foreign.value}, not spiffe://${options.trustDomain}`,
    );

  const path: x509.X509Certificate[] = [];
  let current = first;
  while (!(await isSelfSigned(current))) {
    if (path.length >= MAX_CHAIN_DEPTH)
      throw new Error(`the chain is longer than ${MAX_CHAIN_DEPTH} certificates`);
    const issuer = await findIssuer(current, rest);
    if (!issuer)
      throw new Error(
        `no certificate in the chain issued "${current.subject}"; pass its issuer chain up to the root with --chain`,
      );
    const issuerProblem = caProblem(issuer, options.now);
    if (issuerProblem) throw new Error(`chain certificate "${issuer.subject}" ${issuerProblem}`);
    path.push(issuer);
    current = issuer;
  }
  return {
    certificate: new Uint8Array(first.rawData),
    chain: path.map((certificate) => new Uint8Array(certificate.rawData)),
  };
}

async function findIssuer(
  certificate: x509.X509Certificate,
  candidates: x509.X509Certificate[],
): Promise<x509.X509Certificate | undefined> {
  for (const candidate of candidates) {
    if (candidate.subject !== certificate.issuer) continue;
    if (await certificate.verify({ publicKey: candidate.publicKey, signatureOnly: true }))
      return candidate;
  }
  return undefined;
}
