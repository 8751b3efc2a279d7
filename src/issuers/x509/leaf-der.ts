import { hash, randomFillSync } from 'node:crypto';
import type { JwsAlgorithm, SigningKey } from '../../keys/index.js';
import { DerWriter, oid, sequence, time, tlv, tlvLength } from './der.js';
import { ecdsaRawToDer } from './ecdsa-signature.js';
import type { LeafProfile } from './pipeline.js';

/**
 * The fast path: a leaf's TBSCertificate is concatenated from parts computed once per CA
 * (version, signature algorithm, issuer name, AKI, constant extensions) and the few
 * per-request parts (serial, validity, SPKI, SKI, SANs), then signed by the provider key.
 * No ASN.1 object model on the request path.
 */

export interface IssuerParts {
  signatureAlgorithm: Uint8Array;
  issuerName: Uint8Array;
  authorityKeyIdentifier: Uint8Array;
  /** Signs a TBSCertificate; returns the BIT STRING content bytes (DER for ECDSA). */
  sign(tbs: Uint8Array): Promise<Uint8Array>;
}

const TRUE = Uint8Array.of(0x01, 0x01, 0xff);
const VERSION_3 = Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02);
const EMPTY_NAME = Uint8Array.of(0x30, 0x00);
const NO_UNUSED_BITS = Uint8Array.of(0);

const octets = (...parts: Uint8Array[]): Uint8Array => tlv(0x04, ...parts);
export const extension = (id: string, critical: boolean, value: Uint8Array): Uint8Array =>
  critical ? sequence(oid(id), TRUE, octets(value)) : sequence(oid(id), octets(value));

const NOT_CA = extension('2.5.29.19', true, sequence());
const KEY_USAGE_SIGN = extension('2.5.29.15', true, Uint8Array.of(0x03, 0x02, 0x07, 0x80));
const KEY_USAGE_SIGN_ENCIPHER = extension('2.5.29.15', true, Uint8Array.of(0x03, 0x02, 0x05, 0xa0));
const SERVER_AUTH = oid('1.3.6.1.5.5.7.3.1');
const CLIENT_AUTH = oid('1.3.6.1.5.5.7.3.2');
const EXT_KEY_USAGE = {
  both: extension('2.5.29.37', false, sequence(SERVER_AUTH, CLIENT_AUTH)),
  serverAuth: extension('2.5.29.37', false, sequence(SERVER_AUTH)),
  clientAuth: extension('2.5.29.37', false, sequence(CLIENT_AUTH)),
};
const SKI_OID = oid('2.5.29.14');
const SAN_OID = oid('2.5.29.17');

export const SIGNATURE_ALGORITHMS: Partial<Record<JwsAlgorithm, Uint8Array>> = {
  ES256: sequence(oid('1.2.840.10045.4.3.2')),
  RS256: sequence(oid('1.2.840.113549.1.1.11'), Uint8Array.of(0x05, 0x00)),
};

/** Wraps a provider key: JWS-form signatures become X.509 signature values. */
export function x509Signer(key: SigningKey): (tbs: Uint8Array) => Promise<Uint8Array> {
  if (key.alg === 'ES256') return async (tbs) => ecdsaRawToDer(await key.sign(tbs));
  if (key.alg === 'RS256') return (tbs) => key.sign(tbs);
  throw new Error(`an X.509 CA key must be ES256 or RS256, not ${key.alg}`);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (one-shot: ~0.8 µs, a Hash object ~1.9 µs). */
export const keyIdentifier = (publicKeyBits: Uint8Array): Uint8Array =>
  hash('sha1', publicKeyBits, 'buffer');

export function authorityKeyIdentifierExtension(caKeyIdentifier: Uint8Array): Uint8Array {
  return extension('2.5.29.35', false, sequence(tlv(0x80, caKeyIdentifier)));
}

/**
 * Serials are cut from a pool filled 256 at a time: one CSPRNG call per 256 certificates instead
 * of one (about 10 µs) per certificate. Each slice is handed out once.
 */
const SERIAL_BYTES = 16;
const serialPool = Buffer.alloc(SERIAL_BYTES * 256);
let serialOffset = serialPool.length;

/** A random positive serial of exactly 128 bits (top bit set, so always 17 DER content bytes). */
function serialNumber(): Uint8Array {
  if (serialOffset === serialPool.length) {
    randomFillSync(serialPool);
    serialOffset = 0;
  }
  const serial = new Uint8Array(2 + 1 + SERIAL_BYTES);
  serial.set([0x02, 1 + SERIAL_BYTES, 0x00]);
  serial.set(serialPool.subarray(serialOffset, serialOffset + SERIAL_BYTES), 3);
  serial[3] = (serial[3] ?? 0) | 0x80;
  serialOffset += SERIAL_BYTES;
  return serial;
}

function keyUsageExtension(usage: LeafProfile['keyUsage']): Uint8Array {
  if (usage.digitalSignature && usage.keyEncipherment) return KEY_USAGE_SIGN_ENCIPHER;
  if (usage.digitalSignature && !usage.keyEncipherment) return KEY_USAGE_SIGN;
  throw new Error('leaf key usage must include digitalSignature');
}

function extKeyUsageExtension(usages: LeafProfile['extKeyUsage']): Uint8Array {
  const server = usages.includes('serverAuth');
  const client = usages.includes('clientAuth');
  if (server && client) return EXT_KEY_USAGE.both;
  if (server) return EXT_KEY_USAGE.serverAuth;
  if (client) return EXT_KEY_USAGE.clientAuth;
  throw new Error('leaf needs an extended key usage');
}

/**
 * A validity SEQUENCE that remembers the last one it encoded: within one second, every leaf of
 * one lifetime has the same one, and its two time encodings cost ~1.1 µs.
 */
function validityEncoder(): (notBefore: number, notAfter: number) => Uint8Array {
  let last: { notBefore: number; notAfter: number; der: Uint8Array } = {
    notBefore: NaN,
    notAfter: NaN,
    der: new Uint8Array(0),
  };
  return (notBefore, notAfter) => {
    if (last.notBefore !== notBefore || last.notAfter !== notAfter)
      last = { notBefore, notAfter, der: sequence(time(notBefore), time(notAfter)) };
    return last.der;
  };
}

/** SKI extension up to its 20 key-identifier bytes: SEQUENCE { id, OCTET STRING { OCTET STRING } }. */
const SKI_HEAD = Uint8Array.of(0x30, 0x1d, ...SKI_OID, 0x04, 0x16, 0x04, 0x14);
const SKI_LENGTH = SKI_HEAD.length + 20;
/** SAN extension head: its id and critical = TRUE, as the subject is empty (RFC 5280 §4.2.1.6). */
const SAN_HEAD = Uint8Array.of(...SAN_OID, ...TRUE);

/** Signs a leaf's TBSCertificate and returns the certificate DER. */
export type LeafEncoder = (
  profile: Readonly<LeafProfile>,
  subject: { spki: Uint8Array; publicKeyBits: Uint8Array },
) => Promise<Uint8Array>;

/** A CA's part of every leaf, prepared once. */
interface PreparedIssuer {
  /** signature AlgorithmIdentifier ‖ issuer Name: what follows the serial in a TBSCertificate. */
  afterSerial: Uint8Array;
  signatureAlgorithm: Uint8Array;
  authorityKeyIdentifier: Uint8Array;
  validity: (notBefore: number, notAfter: number) => Uint8Array;
}

/** The TBSCertificate of a leaf, written into one buffer of its exact size. */
function leafTbs(
  profile: Readonly<LeafProfile>,
  subject: { spki: Uint8Array; publicKeyBits: Uint8Array },
  issuer: PreparedIssuer,
): Uint8Array {
  if (profile.isCa) throw new Error('refusing to encode a CA leaf');
  const keyUsage = keyUsageExtension(profile.keyUsage);
  const extKeyUsage = extKeyUsageExtension(profile.extKeyUsage);
  const period = issuer.validity(profile.notBefore, profile.notAfter);
  const serial = serialNumber();
  const aki = issuer.authorityKeyIdentifier;

  let namesLength = 0;
  for (const uri of profile.uris) namesLength += tlvLength(uri.length);
  for (const name of profile.dnsNames) namesLength += tlvLength(name.length);
  const sanValueLength = tlvLength(namesLength);
  const sanContentLength = SAN_HEAD.length + tlvLength(sanValueLength);
  const extensionListLength =
    NOT_CA.length +
    keyUsage.length +
    extKeyUsage.length +
    SKI_LENGTH +
    aki.length +
    tlvLength(sanContentLength);
  const tbsContentLength =
    VERSION_3.length +
    serial.length +
    issuer.afterSerial.length +
    period.length +
    EMPTY_NAME.length +
    subject.spki.length +
    tlvLength(tlvLength(extensionListLength));

  const tbs = new DerWriter(tlvLength(tbsContentLength))
    .header(0x30, tbsContentLength)
    .bytes(VERSION_3, serial, issuer.afterSerial, period, EMPTY_NAME, subject.spki)
    .header(0xa3, tlvLength(extensionListLength))
    .header(0x30, extensionListLength)
    .bytes(NOT_CA, keyUsage, extKeyUsage, SKI_HEAD, keyIdentifier(subject.publicKeyBits), aki)
    .header(0x30, sanContentLength)
    .bytes(SAN_HEAD)
    .header(0x04, sanValueLength)
    .header(0x30, namesLength);
  for (const uri of profile.uris) tbs.header(0x86, uri.length).ascii(uri);
  for (const name of profile.dnsNames) tbs.header(0x82, name.length).ascii(name);
  return tbs.done();
}

/**
 * The leaf encoder of one CA. The parts that depend only on the CA are concatenated once here;
 * per leaf, the TBSCertificate is written into one buffer of its exact size and the certificate
 * into a second, where nesting `tlv` calls allocated and copied about 25 arrays: encoding a
 * leaf (without its signature) took ~16 µs, now ~4.5 µs.
 */
export function leafEncoder(issuer: IssuerParts): LeafEncoder {
  const prepared: PreparedIssuer = {
    afterSerial: concat(issuer.signatureAlgorithm, issuer.issuerName),
    signatureAlgorithm: issuer.signatureAlgorithm,
    authorityKeyIdentifier: issuer.authorityKeyIdentifier,
    validity: validityEncoder(),
  };
  const { signatureAlgorithm } = issuer;
  return async (profile, subject) => {
    const tbs = leafTbs(profile, subject, prepared);
    const signature = await issuer.sign(tbs);
    const bitStringLength = 1 + signature.length;
    const contentLength = tbs.length + signatureAlgorithm.length + tlvLength(bitStringLength);
    return new DerWriter(tlvLength(contentLength))
      .header(0x30, contentLength)
      .bytes(tbs, signatureAlgorithm)
      .header(0x03, bitStringLength)
      .bytes(NO_UNUSED_BITS, signature)
      .done();
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new DerWriter(parts.reduce((sum, part) => sum + part.length, 0)).bytes(...parts).done();
}
