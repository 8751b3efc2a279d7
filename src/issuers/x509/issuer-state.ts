import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { SigningKey } from '../../keys/index.js';
import type { StoredCa } from './ca-store.js';
import { children, expectTlv, toPem } from './der.js';
import {
  SIGNATURE_ALGORITHMS,
  authorityKeyIdentifierExtension,
  keyIdentifier,
  leafEncoder,
  x509Signer,
  type LeafEncoder,
} from './leaf-der.js';
import { spkiOf } from './webcrypto-bridge.js';

/**
 * Everything issuance needs from the CA, computed once when the CA is loaded: the parts of
 * every leaf that depend only on the CA, its validity (leaves never outlive it), and the
 * certificates handed out beside each leaf.
 */
export interface IssuerState {
  /** Signs a leaf with the CA-dependent parts prepared once. */
  encodeLeaf: LeafEncoder;
  /** Unix seconds; notAfter is the earliest over the CA certificate and its whole chain. */
  validity: { notBefore: number; notAfter: number };
  /** The CA certificate and any intermediates above it, excluding the root. */
  intermediatesPem: string[];
  roots: Uint8Array[];
  rootsPem: string[];
  subject: string;
}

/** The exact DER bytes of a certificate's subject Name (the leaf's issuer must match them). */
function subjectNameBytes(certificate: Uint8Array): Uint8Array {
  const outer = expectTlv(certificate, 0, 0x30);
  const tbs = expectTlv(certificate, outer.contentStart, 0x30);
  const fields = children(certificate, tbs);
  const subject = fields[fields[0]?.tag === 0xa0 ? 5 : 4];
  if (!subject || subject.tag !== 0x30) throw new Error('CA certificate has no subject Name');
  return certificate.slice(subject.start, subject.end);
}

export function issuerStateFor(stored: StoredCa, key: SigningKey): IssuerState {
  const signatureAlgorithm = SIGNATURE_ALGORITHMS[key.alg];
  if (!signatureAlgorithm)
    throw new Error(`an X.509 CA key must be ES256 or RS256, not ${key.alg}`);
  const certificate = new x509.X509Certificate(stored.certificate);
  const certificateSpki = new Uint8Array(certificate.publicKey.rawData);
  if (!Buffer.from(certificateSpki).equals(Buffer.from(spkiOf(key)))) {
    throw new Error(
      `the CA certificate "${certificate.subject}" is not for the provider's x509-ca key (public keys differ)`,
    );
  }
  const skiExtension = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const caKeyId = skiExtension
    ? Buffer.from(skiExtension.keyId, 'hex')
    : keyIdentifier(subjectPublicKeyBits(certificateSpki));
  // The chain ends with the root; without one, the CA certificate is itself the root.
  const root = stored.chain.at(-1);
  const roots = root ? [root] : [stored.certificate];
  const intermediates = root ? [stored.certificate, ...stored.chain.slice(0, -1)] : [];
  return {
    encodeLeaf: leafEncoder({
      signatureAlgorithm,
      issuerName: subjectNameBytes(stored.certificate),
      authorityKeyIdentifier: authorityKeyIdentifierExtension(caKeyId),
      sign: x509Signer(key),
    }),
    validity: {
      notBefore: Math.floor(certificate.notBefore.getTime() / 1000),
      notAfter: chainNotAfter(certificate, stored.chain),
    },
    intermediatesPem: intermediates.map((der) => toPem(der)),
    roots,
    rootsPem: roots.map((der) => toPem(der)),
    subject: certificate.subject,
  };
}

/**
 * When the CA's path to its root stops validating: the earliest notAfter of the CA certificate
 * and every certificate above it. A leaf outliving an expired intermediate or root would fail
 * path validation at the relying party, so leaves are capped here.
 */
function chainNotAfter(certificate: x509.X509Certificate, chain: readonly Uint8Array[]): number {
  const notAfters = [certificate, ...chain.map((der) => new x509.X509Certificate(der))].map(
    (cert) => cert.notAfter.getTime(),
  );
  return Math.floor(Math.min(...notAfters) / 1000);
}

function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const outer = expectTlv(spki, 0, 0x30);
  const bits = children(spki, outer)[1];
  if (!bits || bits.tag !== 0x03) throw new Error('bad SubjectPublicKeyInfo');
  return spki.subarray(bits.contentStart + 1, bits.end);
}
