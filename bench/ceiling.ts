import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { join, resolve } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { Fixtures } from './fixtures.js';
import {
  cpuPerCall,
  fire,
  freePort,
  startProcess,
  stopProcess,
  timePerCall,
  waitForHttp,
} from './support.js';

/**
 * What one Node process could do at best for this work, measured in the same run as the
 * broker: a trivial node:http server answering the same requests (t_http), plus raw
 * node:crypto on one core for the signature work an exchange cannot avoid.
 * ceiling = 1 / (t_http + t_verify + t_sign).
 */
const ROOT = resolve(import.meta.dirname, '..');

export interface CryptoTimes {
  /** Seconds per call, one core. */
  rs256Verify: number;
  es256Sign: number;
  rs256Sign: number;
  /** A CSR's P-256 self-signature. */
  es256Verify: number;
  /** The same four as CPU seconds per call, steadier than wall time on a shared machine. */
  cpu: { rs256Verify: number; es256Sign: number; rs256Sign: number; es256Verify: number };
}

export interface ReferenceServer {
  url: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

/** The node:http baseline server in a process of its own, warmed up; measured like a broker. */
export function startHttpBaseline(bodies: string[], connections: number): Promise<ReferenceServer> {
  return startReference('baseline-server.ts', [], bodies, connections);
}

/** bench/bare-exchange-server.ts: node:http with the exchange's signature work and nothing else. */
export function startBareExchange(
  fixtures: Fixtures,
  connections: number,
): Promise<ReferenceServer> {
  const publicPem = createPublicKey(fixtures.clusterKey).export({ type: 'spki', format: 'pem' });
  return startReference(
    'bare-exchange-server.ts',
    [Buffer.from(publicPem).toString('base64')],
    fixtures.bodies.es256,
    connections,
  );
}

async function startReference(
  script: string,
  args: string[],
  bodies: string[],
  connections: number,
): Promise<ReferenceServer> {
  const port = await freePort();
  const server = startProcess([
    join(ROOT, 'bin/run-ts.js'),
    join(ROOT, 'bench', script),
    String(port),
    ...args,
  ]);
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitForHttp(url, 20_000, server).catch(() => undefined);
    await fire(url, bodies, { connections, seconds: 1 });
  } catch (error) {
    await stopProcess(server);
    throw error;
  }
  return { url, pid: server.pid, stop: () => stopProcess(server) };
}

export function measureCrypto(fixtures: Fixtures): CryptoTimes {
  const clusterPublic = createPublicKey(fixtures.clusterKey);
  const tokens = fixtures.tokens;
  let index = 0;
  const verifyToken = () => {
    const token = tokens[index++ % tokens.length] as string;
    const dot = token.lastIndexOf('.');
    verify(
      'sha256',
      Buffer.from(token.slice(0, dot)),
      clusterPublic,
      Buffer.from(token.slice(dot + 1), 'base64url'),
    );
  };
  const rs256Verify = timePerCall(verifyToken);
  const claims = Buffer.from(
    `${Buffer.from('{"alg":"ES256","kid":"x","typ":"JWT"}').toString('base64url')}.${Buffer.from(
      JSON.stringify({
        iss: 'x',
        sub: 'system:serviceaccount:a:b',
        aud: 'bench-audience',
        exp: 1,
        iat: 1,
        jti: 'x'.repeat(22),
      }),
    ).toString('base64url')}`,
  );
  const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaKey: KeyObject = fixtures.clusterKey;
  // Bare KeyObjects, the fastest call node:crypto offers (DER out; an options object costs more).
  const signEs256 = () => void sign('sha256', claims, ecKey.privateKey);
  const signRs256 = () => void sign('sha256', claims, rsaKey);
  const signature = sign('sha256', claims, ecKey.privateKey);
  const verifyEs256 = () => void verify('sha256', claims, ecKey.publicKey, signature);
  const es256Sign = timePerCall(signEs256);
  const rs256Sign = timePerCall(signRs256, 300);
  const es256Verify = timePerCall(verifyEs256);
  const cpu = {
    rs256Verify: cpuPerCall(verifyToken),
    es256Sign: cpuPerCall(signEs256),
    rs256Sign: cpuPerCall(signRs256, 300),
    es256Verify: cpuPerCall(verifyEs256),
  };
  return { rs256Verify, es256Sign, rs256Sign, es256Verify, cpu };
}

/**
 * SoftHSM2's raw ES256 signing rate: C_Sign of a SHA-256 digest with a P-256 session key, one
 * session, one at a time, for about a second: the most the token gives one core.
 */
export function measureSoftHsmSign(token: { module: string; label: string; pin: string }): number {
  const pkcs11 = new pkcs11js.PKCS11();
  pkcs11.load(token.module);
  pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = pkcs11
      .C_GetSlotList(true)
      .find((candidate) => pkcs11.C_GetTokenInfo(candidate).label.trim() === token.label);
    if (!slot) throw new Error(`no SoftHSM2 token ${token.label}`);
    const session = pkcs11.C_OpenSession(
      slot,
      pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
    );
    pkcs11.C_Login(session, pkcs11js.CKU_USER, token.pin);
    const { privateKey } = pkcs11.C_GenerateKeyPair(
      session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_VERIFY, value: true },
        { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
      ],
      [
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
      ],
    );
    const digest = createHash('sha256').update('bench').digest();
    const perCall = timePerCall(() => {
      pkcs11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, privateKey);
      pkcs11.C_Sign(session, digest, Buffer.alloc(64));
    }, 500);
    pkcs11.C_CloseSession(session);
    return 1 / perCall;
  } finally {
    pkcs11.C_Finalize();
  }
}
