import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraError } from '../../../../src/errors.js';
import { verifyCsr } from '../../../../src/issuers/x509/csr.js';
import { pemBlocks } from '../../../../src/issuers/x509/der.js';
import { EC_P256, EC_P384, RSA_2048, opensslCsr, tempDir } from '../../../support/x509.js';

const workspace = tempDir();
const csrs: Record<string, string> = {};

const derOf = (pem: string): Buffer => Buffer.from(pemBlocks(pem, 'CERTIFICATE REQUEST')[0]!);
const pemOf = (der: Uint8Array): string =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;

beforeAll(() => {
  const make = (keyArgs: string[], extra: string[] = []) =>
    opensslCsr(workspace.dir, keyArgs, extra).csrPem;
  csrs.p256 = make(EC_P256);
  csrs.p384 = make(EC_P384);
  csrs.rsa2048 = make(RSA_2048);
  csrs.rsa1024 = make(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']);
  csrs.rsaExponent3 = make([...RSA_2048, '-pkeyopt', 'rsa_keygen_pubexp:3']);
  csrs.p192 = make(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-192']);
  csrs.secp256k1 = make(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1']);
  csrs.ed25519 = make(['-algorithm', 'ED25519']);
  csrs.sha1 = make(EC_P256, ['-sha1']);
  csrs.caTrueAndForeignSans = make(EC_P256, [
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'subjectAltName=URI:spiffe://evil.org/x,DNS:evil.example.com',
  ]);
  // A signature byte flipped: the request no longer proves possession of the key.
  const tampered = derOf(csrs.p256);
  tampered.writeUInt8(tampered.readUInt8(tampered.length - 5) ^ 0x01, tampered.length - 5);
  csrs.badSignature = pemOf(tampered);
  // The subject changed after signing.
  const altered = derOf(csrs.p256);
  const at = altered.indexOf(Buffer.from('Requested'));
  altered[at] = 'X'.charCodeAt(0);
  csrs.alteredSubject = pemOf(altered);
  csrs.trailingBytes = pemOf(Buffer.concat([derOf(csrs.p256), Buffer.of(0)]));
  // The key's y coordinate changed: the point is no longer on the curve.
  const offCurve = derOf(csrs.p256);
  const spki = Buffer.from(verifyCsr(csrs.p256).spki);
  const last = offCurve.indexOf(spki) + spki.length - 1;
  offCurve.writeUInt8(offCurve.readUInt8(last) ^ 0x01, last);
  csrs.offCurve = pemOf(offCurve);
  csrs.truncated = pemOf(derOf(csrs.p256).subarray(0, 100));
});
afterAll(() => workspace.cleanup());

describe('verifyCsr', () => {
  it.each([
    ['ok/ec-p256-pem', () => csrs.p256!, 'ec', 'P-256'],
    ['ok/ec-p384-pem', () => csrs.p384!, 'ec', 'P-384'],
    ['ok/rsa-2048-pem', () => csrs.rsa2048!, 'rsa', 'RSA-2048'],
    ['ok/base64url-der', () => derOf(csrs.p256!).toString('base64url'), 'ec', 'P-256'],
    [
      'ok/ca-true-and-foreign-sans-are-parsed-past',
      () => csrs.caTrueAndForeignSans!,
      'ec',
      'P-256',
    ],
  ])('%s', (_name, csr, keyType, description) => {
    const verified = verifyCsr(csr());
    expect(verified.keyType).toBe(keyType);
    expect(verified.keyDescription).toBe(description);
    // The SPKI copied into the leaf is the one the CSR carries.
    expect(
      Buffer.from(verified.spki).equals(
        createPublicKey(verified.publicKeyPem).export({ type: 'spki', format: 'der' }),
      ),
    ).toBe(true);
  });

  const malformed = 'csr is not a valid PKCS#10 certificate request (PEM or base64url DER)';
  it.each([
    [
      'fail/bad-signature',
      () => csrs.badSignature!,
      'csr_signature_invalid',
      'csr signature does not verify (proof of possession failed)',
    ],
    [
      'fail/subject-altered-after-signing',
      () => csrs.alteredSubject!,
      'csr_signature_invalid',
      'csr signature does not verify (proof of possession failed)',
    ],
    [
      'fail/rsa-1024',
      () => csrs.rsa1024!,
      'csr_key_not_allowed',
      'csr key is not allowed: RSA keys must be at least 2048 bits (got 1024)',
    ],
    [
      'fail/rsa-exponent-3',
      () => csrs.rsaExponent3!,
      'csr_key_not_allowed',
      'csr key is not allowed: RSA public exponent must be 65537',
    ],
    [
      'fail/ec-p192',
      () => csrs.p192!,
      'csr_key_not_allowed',
      'csr key is not allowed: EC keys must use curve P-256 or P-384',
    ],
    [
      'fail/ec-secp256k1',
      () => csrs.secp256k1!,
      'csr_key_not_allowed',
      'csr key is not allowed: EC keys must use curve P-256 or P-384',
    ],
    [
      'fail/ed25519',
      () => csrs.ed25519!,
      'csr_key_not_allowed',
      'csr key is not allowed: only EC P-256/P-384 and RSA (2048 bits or more) keys are accepted',
    ],
    [
      'fail/sha1-signature',
      () => csrs.sha1!,
      'csr_signature_algorithm_not_allowed',
      'csr signature algorithm is not allowed (ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512)',
    ],
    [
      'fail/ec-point-off-the-curve',
      () => csrs.offCurve!,
      'malformed_csr',
      'csr public key is not a valid EC point',
    ],
    ['fail/trailing-bytes', () => csrs.trailingBytes!, 'malformed_csr', malformed],
    ['fail/truncated', () => csrs.truncated!, 'malformed_csr', malformed],
    ['fail/not-base64', () => 'not a csr!', 'malformed_csr', malformed],
    ['fail/empty', () => '', 'malformed_csr', malformed],
    [
      'fail/certificate-pem',
      () => '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
      'malformed_csr',
      malformed,
    ],
    [
      'fail/too-large',
      () => Buffer.alloc(20_000, 0x30).toString('base64url'),
      'malformed_csr',
      malformed,
    ],
  ])('%s', (_name, csr, reason, description) => {
    let caught: unknown;
    try {
      verifyCsr(csr());
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TesseraError);
    const { code, status, reason: actual, description: said } = caught as TesseraError;
    expect({ code, status, reason: actual, description: said }).toEqual({
      code: 'invalid_request',
      status: 400,
      reason,
      description,
    });
  });
});
