import { verify } from 'node:crypto';
import { invalidRequest } from '../../errors.js';
import {
  DerError,
  children,
  expectTlv,
  oid,
  positiveIntegerContent,
  sequence,
  type Tlv,
} from './der.js';
import { ecdsaDerToRaw } from './ecdsa-signature.js';

/**
 * CSR checks, the first stage of issuance: parse a PKCS#10 request strictly, allow only
 * EC P-256/P-384 and RSA 2048–8192 (e = 65537) keys, and verify the self-signature (proof
 * that the requester holds the private key). Names, attributes and requested extensions are
 * parsed past and never read: the leaf's contents come from the role, not the requester.
 *
 * Hand-rolled DER instead of @peculiar/asn1-csr: parsing there costs ~150 µs a request,
 * here ~5 µs; the key is imported once, from the checked SPKI as PEM text (see spkiKey).
 */

export type CsrKeyType = 'ec' | 'rsa';

export interface VerifiedCsr {
  /** The requester's SubjectPublicKeyInfo, DER, copied into the leaf unchanged. */
  spki: Uint8Array;
  /** The BIT STRING content of the key (without the unused-bits byte), for the SKI. */
  publicKeyBits: Uint8Array;
  keyType: CsrKeyType;
  /** `P-256` / `P-384`, or `RSA-<bits>`. */
  keyDescription: string;
  /** The SPKI as PEM text: the form OpenSSL imports fastest (see pemOf). */
  publicKeyPem: string;
}

/** The largest CSR accepted, to bound parsing and RSA verification cost. */
const MAX_CSR_BYTES = 16 * 1024;

const EC_PUBLIC_KEY = oid('1.2.840.10045.2.1');

/**
 * The allow-lists, looked up by comparing the DER bytes of an AlgorithmIdentifier in place
 * (a hex string of each was ~0.3 µs and two allocations, three times a request).
 */
const EC_CURVES: ReadonlyArray<{ der: Uint8Array; crv: 'P-256' | 'P-384'; size: number }> = [
  { der: sequence(EC_PUBLIC_KEY, oid('1.2.840.10045.3.1.7')), crv: 'P-256', size: 32 },
  { der: sequence(EC_PUBLIC_KEY, oid('1.3.132.0.34')), crv: 'P-384', size: 48 },
];
const NULL = Uint8Array.of(0x05, 0x00);
const RSA_ALGORITHM = sequence(oid('1.2.840.113549.1.1.1'), NULL);
const VERSION_0 = Uint8Array.of(0x02, 0x01, 0x00);
const EXPONENT_65537 = Uint8Array.of(0x01, 0x00, 0x01);

const SIGNATURE_ALGORITHMS: Array<{ der: Uint8Array; keyType: CsrKeyType; hash: string }> = [];
for (const [dotted, hash] of [
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
] as const) {
  SIGNATURE_ALGORITHMS.push({ der: sequence(oid(dotted)), keyType: 'ec', hash });
}
for (const [dotted, hash] of [
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
] as const) {
  SIGNATURE_ALGORITHMS.push({ der: sequence(oid(dotted), NULL), keyType: 'rsa', hash });
  SIGNATURE_ALGORITHMS.push({ der: sequence(oid(dotted)), keyType: 'rsa', hash });
}

/** Whether `buffer[start, end)` holds exactly `expected`. */
function bytesAre(buffer: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (buffer[start + i] !== expected[i]) return false;
  return true;
}

const malformed = (problem: string, cause?: unknown) =>
  invalidRequest('csr is not a valid PKCS#10 certificate request (PEM or base64url DER)', {
    reason: 'malformed_csr',
    detail: { problem },
    cause,
  });
const keyNotAllowed = (description: string) =>
  invalidRequest(`csr key is not allowed: ${description}`, { reason: 'csr_key_not_allowed' });

/** PEM (`CERTIFICATE REQUEST`) or base64url/base64 DER to DER bytes. */
function decodeCsrInput(input: string): Uint8Array {
  const text = input.trim();
  const pem =
    /^-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END (?:NEW )?CERTIFICATE REQUEST-----$/.exec(
      text,
    );
  const body = pem ? (pem[1] ?? '').replace(/\s+/g, '') : text;
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(body)) throw malformed('not PEM or base64url');
  // A view of the decoded bytes: `new Uint8Array(buffer)` copied them one by one (~1.4 µs).
  const decoded = Buffer.from(body, 'base64');
  const der = new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength);
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw malformed(`size ${der.length} bytes`);
  return der;
}

/** Parses, checks the key and verifies the self-signature; every failure is `invalid_request`. */
export function verifyCsr(input: string): VerifiedCsr {
  const der = decodeCsrInput(input);
  let parts: ReturnType<typeof splitCsr>;
  try {
    parts = splitCsr(der);
  } catch (error) {
    if (error instanceof DerError) throw malformed(error.message);
    throw error;
  }
  const key = readKey(der, parts.spki);
  const algorithm = SIGNATURE_ALGORITHMS.find((known) =>
    bytesAre(der, parts.algorithm.start, parts.algorithm.end, known.der),
  );
  if (!algorithm || algorithm.keyType !== key.keyType) {
    throw invalidRequest(
      'csr signature algorithm is not allowed (ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512)',
      {
        reason: 'csr_signature_algorithm_not_allowed',
      },
    );
  }
  const signed = der.subarray(parts.info.start, parts.info.end);
  if (!signatureVerifies(algorithm.hash, signed, key, parts.signature)) {
    throw invalidRequest('csr signature does not verify (proof of possession failed)', {
      reason: 'csr_signature_invalid',
    });
  }
  return key;
}

function splitCsr(der: Uint8Array): {
  info: Tlv;
  spki: Tlv;
  algorithm: Tlv;
  signature: Uint8Array;
} {
  const outer = expectTlv(der, 0, 0x30);
  if (outer.end !== der.length) throw new DerError('trailing bytes');
  const [info, algorithm, signatureBits, ...extra] = children(der, outer);
  if (!info || !algorithm || !signatureBits || extra.length)
    throw new DerError('CertificationRequest must have 3 parts');
  if (info.tag !== 0x30 || algorithm.tag !== 0x30 || signatureBits.tag !== 0x03)
    throw new DerError('bad CertificationRequest tags');
  if (der[signatureBits.contentStart] !== 0)
    throw new DerError('signature BIT STRING has unused bits');
  return {
    info,
    spki: requestedKey(der, info),
    algorithm,
    signature: der.subarray(signatureBits.contentStart + 1, signatureBits.end),
  };
}

/** The SubjectPublicKeyInfo of a CertificationRequestInfo; the subject and attributes are only checked to be well-formed. */
function requestedKey(der: Uint8Array, info: Tlv): Tlv {
  const [version, subject, spki, attributes, ...rest] = children(der, info);
  if (!version || !subject || !spki || !attributes || rest.length)
    throw new DerError('CertificationRequestInfo must have 4 parts');
  if (!bytesAre(der, version.start, version.end, VERSION_0))
    throw new DerError('version must be 0');
  if (subject.tag !== 0x30 || spki.tag !== 0x30 || attributes.tag !== 0xa0)
    throw new DerError('bad CertificationRequestInfo tags');
  children(der, subject);
  children(der, attributes);
  return spki;
}

interface KeyWithSize extends VerifiedCsr {
  ecSize: number;
}

function readKey(der: Uint8Array, spkiTlv: Tlv): KeyWithSize {
  let algorithm: Tlv;
  let bits: Tlv;
  try {
    const [algorithmPart, bitsPart, ...extra] = children(der, spkiTlv);
    if (
      !algorithmPart ||
      !bitsPart ||
      extra.length ||
      algorithmPart.tag !== 0x30 ||
      bitsPart.tag !== 0x03
    )
      throw new DerError('bad SubjectPublicKeyInfo');
    [algorithm, bits] = [algorithmPart, bitsPart];
    if (der[bits.contentStart] !== 0) throw new DerError('key BIT STRING has unused bits');
  } catch (error) {
    if (error instanceof DerError) throw malformed(error.message);
    throw error;
  }
  const spki = der.slice(spkiTlv.start, spkiTlv.end);
  const publicKeyBits = der.slice(bits.contentStart + 1, bits.end);
  const curve = EC_CURVES.find((known) => bytesAre(der, algorithm.start, algorithm.end, known.der));
  if (curve) {
    return {
      spki,
      publicKeyBits,
      keyType: 'ec',
      keyDescription: curve.crv,
      ecSize: curve.size,
      publicKeyPem: pemOf(spki),
    };
  }
  if (bytesAre(der, algorithm.start, algorithm.end, RSA_ALGORITHM)) {
    const modulusBits = rsaModulusBits(publicKeyBits);
    return {
      spki,
      publicKeyBits,
      keyType: 'rsa',
      keyDescription: `RSA-${modulusBits}`,
      ecSize: 0,
      publicKeyPem: pemOf(spki),
    };
  }
  const idEnd = algorithm.contentStart + EC_PUBLIC_KEY.length;
  if (idEnd <= algorithm.end && bytesAre(der, algorithm.contentStart, idEnd, EC_PUBLIC_KEY)) {
    throw keyNotAllowed('EC keys must use curve P-256 or P-384');
  }
  throw keyNotAllowed('only EC P-256/P-384 and RSA (2048 bits or more) keys are accepted');
}

/**
 * The SPKI as PEM text. The key is imported by the signature check itself, from PEM: OpenSSL's
 * PEM reader goes straight to the SubjectPublicKeyInfo decoder, where DER bytes and JWK objects
 * cost three to four times as much (Node probes the key input and OpenSSL tries its decoders in
 * turn), and no KeyObject is left for the garbage collector to finalise. The point is still
 * checked to be on its curve, and the key is exactly the one the leaf will carry.
 */
function pemOf(spki: Uint8Array): string {
  return `-----BEGIN PUBLIC KEY-----\n${Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength).toString('base64')}\n-----END PUBLIC KEY-----\n`;
}

/** Checks an RSAPublicKey's size and exponent; returns the modulus size in bits. */
function rsaModulusBits(bits: Uint8Array): number {
  let modulus: Uint8Array;
  let exponent: Uint8Array;
  try {
    const outer = expectTlv(bits, 0, 0x30);
    if (outer.end !== bits.length) throw new DerError('trailing bytes in RSA key');
    const [n, e, ...extra] = children(bits, outer);
    if (!n || !e || extra.length) throw new DerError('RSA key must hold n and e');
    modulus = positiveIntegerContent(bits, n);
    exponent = positiveIntegerContent(bits, e);
  } catch (error) {
    if (error instanceof DerError) throw malformed(error.message);
    throw error;
  }
  // positiveIntegerContent never returns an empty magnitude; the fallback only satisfies the type.
  const modulusBits = (modulus.length - 1) * 8 + (32 - Math.clz32(modulus[0] ?? 0));
  if (modulusBits < 2048)
    throw keyNotAllowed(`RSA keys must be at least 2048 bits (got ${modulusBits})`);
  if (modulusBits > 8192)
    throw keyNotAllowed(`RSA keys must be at most 8192 bits (got ${modulusBits})`);
  if (!bytesAre(exponent, 0, exponent.length, EXPONENT_65537))
    throw keyNotAllowed('RSA public exponent must be 65537');
  return modulusBits;
}

function signatureVerifies(
  hash: string,
  signed: Uint8Array,
  key: KeyWithSize,
  signature: Uint8Array,
): boolean {
  if (key.keyType === 'ec') {
    try {
      // The strict parse refuses BER and non-minimal integers, so a signature it accepts is
      // already the one DER form handed to OpenSSL (re-encoding it cost ~1.5 µs for the same bytes).
      ecdsaDerToRaw(signature, key.ecSize);
    } catch {
      return false;
    }
  }
  try {
    return verify(hash, signed, key.publicKeyPem, signature);
  } catch (cause) {
    // The key did not import: the signature was never checked.
    if (key.keyType === 'ec')
      throw invalidRequest('csr public key is not a valid EC point', {
        reason: 'malformed_csr',
        cause,
      });
    throw malformed('RSA key does not import', cause);
  }
}
