import { createHash, randomFillSync } from 'node:crypto';
import type { JwsAlgorithm, SigningKey } from '../../keys/index.js';
import { oid, sequence, time, tlv } from './der.js';
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

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export const keyIdentifier = (publicKeyBits: Uint8Array): Uint8Array =>
  createHash('sha1').update(publicKeyBits).digest();

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

/** The subject is empty, so the SAN extension is critical (RFC 5280 §4.2.1.6). */
function subjectAltNameExtension(uris: string[], dnsNames: string[]): Uint8Array {
  const names = [
    ...uris.map((uri) => tlv(0x86, Buffer.from(uri, 'latin1'))),
    ...dnsNames.map((name) => tlv(0x82, Buffer.from(name, 'latin1'))),
  ];
  return sequence(SAN_OID, TRUE, octets(sequence(...names)));
}

/** Encodes and signs the leaf; returns the certificate DER. */
export async function encodeLeaf(
  profile: Readonly<LeafProfile>,
  subject: { spki: Uint8Array; publicKeyBits: Uint8Array },
  issuer: IssuerParts,
): Promise<Uint8Array> {
  if (profile.isCa) throw new Error('refusing to encode a CA leaf');
  const extensions = tlv(
    0xa3,
    sequence(
      NOT_CA,
      keyUsageExtension(profile.keyUsage),
      extKeyUsageExtension(profile.extKeyUsage),
      sequence(SKI_OID, octets(tlv(0x04, keyIdentifier(subject.publicKeyBits)))),
      issuer.authorityKeyIdentifier,
      subjectAltNameExtension(profile.uris, profile.dnsNames),
    ),
  );
  const tbs = sequence(
    VERSION_3,
    serialNumber(),
    issuer.signatureAlgorithm,
    issuer.issuerName,
    sequence(time(profile.notBefore), time(profile.notAfter)),
    EMPTY_NAME,
    subject.spki,
    extensions,
  );
  const signature = await issuer.sign(tbs);
  return sequence(tbs, issuer.signatureAlgorithm, tlv(0x03, Uint8Array.of(0), signature));
}
