import pkcs11js from 'pkcs11js';
import type { JWK } from 'jose';
import { SIGNING_ALGORITHMS } from '../constants.js';
import { KeyStoreError } from './errors.js';
import { jwkFromEcPoint, jwkFromRsa } from './jwk.js';
import type { JwsAlgorithm, KeyRecord, KeyState } from './types.js';

/**
 * Key objects on the token and how Tessera names them. `CKA_ID` is 16 random bytes shared by
 * the two halves of a pair; `CKA_LABEL` records purpose and rotation state, so the token
 * itself is the state every replica reads:
 *
 *   tessera:jwt:<alg>:<state>:<createdAt>:<activateAt>:<activatedAt>:<retiredAt>   (Unix seconds, `-` when unset)
 *   tessera:named:<name>:<alg>                                                    (long-lived, e.g. x509-ca)
 */
const JWT_PREFIX = 'tessera:jwt:';
const ALGORITHMS: readonly JwsAlgorithm[] = SIGNING_ALGORITHMS;
const STATES: readonly KeyState[] = ['next', 'active', 'retired'];

/** DER of the P-256 curve OID (1.2.840.10045.3.1.7), the CKA_EC_PARAMS of ES256 keys. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

export function jwtKeyLabel(record: Omit<KeyRecord, 'kid'>): string {
  const time = (value: number | undefined): string => (value === undefined ? '-' : String(value));
  return `${JWT_PREFIX}${record.alg}:${record.state}:${time(record.createdAt)}:${time(record.activateAt)}:${time(record.activatedAt)}:${time(record.retiredAt)}`;
}

export function parseJwtKeyLabel(label: string): Omit<KeyRecord, 'kid'> | undefined {
  if (!label.startsWith(JWT_PREFIX)) return undefined;
  const [alg, state, created, activateAt, activatedAt, retiredAt, ...rest] = label
    .slice(JWT_PREFIX.length)
    .split(':');
  if (
    rest.length > 0 ||
    !ALGORITHMS.includes(alg as JwsAlgorithm) ||
    !STATES.includes(state as KeyState)
  )
    return undefined;
  const time = (value: string | undefined): number | undefined =>
    value && /^\d+$/.test(value) ? Number(value) : undefined;
  const createdAt = time(created);
  if (createdAt === undefined) return undefined;
  return {
    alg: alg as JwsAlgorithm,
    state: state as KeyState,
    createdAt,
    activateAt: time(activateAt),
    activatedAt: time(activatedAt),
    retiredAt: time(retiredAt),
  };
}

export const namedKeyLabel = (name: string, alg: JwsAlgorithm): string =>
  `tessera:named:${name}:${alg}`;

type Session = Buffer;
type Handle = Buffer;

export function findObjects(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  template: pkcs11js.Template,
): Handle[] {
  pkcs11.C_FindObjectsInit(session, template);
  try {
    const found: Handle[] = [];
    for (
      let batch = pkcs11.C_FindObjects(session, 64);
      batch.length > 0;
      batch = pkcs11.C_FindObjects(session, 64)
    )
      found.push(...batch);
    return found;
  } finally {
    pkcs11.C_FindObjectsFinal(session);
  }
}

/** Both halves of the pair with this CKA_ID, as stored on the token (never a session copy). */
export function findPair(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  id: Buffer,
): { privateKey?: Handle; publicKey?: Handle } {
  const [privateKey] = findObjects(pkcs11, session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_ID, value: id },
  ]);
  const [publicKey] = findObjects(pkcs11, session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_ID, value: id },
  ]);
  return { privateKey, publicKey };
}

/**
 * A session-object copy of a private key (`CKA_TOKEN` false), or `undefined` when the token
 * refuses to copy it (`CKA_COPYABLE` false, or no C_CopyObject). The copy stays inside the
 * token, as sensitive and unextractable as the original (a copy can only tighten those), and
 * disappears with the session that made it. SoftHSM2 rereads a token object's file on every
 * use; a session object is in memory, which halves the cost of an ECDSA signature (measured).
 */
export function sessionCopy(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  privateKey: Handle,
): Handle | undefined {
  try {
    return pkcs11.C_CopyObject(session, privateKey, [{ type: pkcs11js.CKA_TOKEN, value: false }]);
  } catch {
    return undefined;
  }
}

/** The CKA_ID of an object, when it has one. */
export function objectId(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  handle: Handle,
): Buffer | undefined {
  const value = pkcs11.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_ID }])[0]?.value;
  return Buffer.isBuffer(value) && value.length > 0 ? value : undefined;
}

/**
 * Generates a pair on the token: the private half is a token object, private, sensitive and
 * never extractable, so its value never leaves the HSM.
 */
export function generatePair(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  alg: JwsAlgorithm,
  rsaBits: number,
  label: string,
  id: Buffer,
): pkcs11js.KeyPair {
  const common = [
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
  ];
  const publicTemplate: pkcs11js.Template = [
    ...common,
    { type: pkcs11js.CKA_VERIFY, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: false },
  ];
  const privateTemplate: pkcs11js.Template = [
    ...common,
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
  if (alg === 'ES256') {
    publicTemplate.push({ type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS });
    return pkcs11.C_GenerateKeyPair(
      session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      publicTemplate,
      privateTemplate,
    );
  }
  publicTemplate.push(
    { type: pkcs11js.CKA_MODULUS_BITS, value: rsaBits },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
  );
  return pkcs11.C_GenerateKeyPair(
    session,
    { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
    publicTemplate,
    privateTemplate,
  );
}

export function readPublicJwk(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  publicKey: Handle,
  alg: JwsAlgorithm,
): JWK {
  if (alg === 'ES256') {
    const [point] = pkcs11.C_GetAttributeValue(session, publicKey, [
      { type: pkcs11js.CKA_EC_POINT },
    ]);
    return jwkFromEcPoint(unwrapOctetString(bufferOf(point, 'CKA_EC_POINT')), alg);
  }
  const [modulus, exponent] = pkcs11.C_GetAttributeValue(session, publicKey, [
    { type: pkcs11js.CKA_MODULUS },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT },
  ]);
  return jwkFromRsa(
    bufferOf(modulus, 'CKA_MODULUS'),
    bufferOf(exponent, 'CKA_PUBLIC_EXPONENT'),
    alg,
  );
}

function bufferOf(attribute: pkcs11js.Attribute | undefined, name: string): Buffer {
  if (!Buffer.isBuffer(attribute?.value))
    throw new KeyStoreError(`PKCS#11 public key has no ${name}`, 'KEY_MISSING');
  return attribute.value;
}

/** CKA_EC_POINT is a DER OCTET STRING around the SEC1 point (PKCS#11 v2.40 §2.3.3); some tokens omit the wrapper. */
function unwrapOctetString(value: Buffer): Buffer {
  if (value.length === 67 && value[0] === 0x04 && value[1] === 0x41) return value.subarray(2);
  return value;
}

export function setLabel(
  pkcs11: pkcs11js.PKCS11,
  session: Session,
  handles: Handle[],
  label: string,
): void {
  for (const handle of handles)
    pkcs11.C_SetAttributeValue(session, handle, [{ type: pkcs11js.CKA_LABEL, value: label }]);
}

/** The mechanism and the bytes to hand the token for one JWS signature. */
export function signMechanism(alg: JwsAlgorithm): pkcs11js.Mechanism {
  switch (alg) {
    case 'ES256':
      // SoftHSM2 2.6 has no CKM_ECDSA_SHA256: the caller hashes, the token signs the digest.
      return { mechanism: pkcs11js.CKM_ECDSA };
    case 'RS256':
      return { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS };
    case 'PS256': {
      const parameter: pkcs11js.RsaPSS = {
        type: pkcs11js.CK_PARAMS_RSA_PSS,
        hashAlg: pkcs11js.CKM_SHA256,
        mgf: pkcs11js.CKG_MGF1_SHA256,
        saltLen: 32,
      };
      return { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter };
    }
  }
}
