import { constants, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { compactVerify } from 'jose';
import { describe, expect, test } from 'vitest';
import { checkJwk, parseCompactJws } from '../../../src/verifiers/index.js';
import { checkHeader } from '../../../src/verifiers/jws.js';
import {
  ACCEPTED_ALGORITHMS,
  type AcceptedAlgorithm,
} from '../../../src/verifiers/verification-keys.js';
import { ecdsaRawToDer as strictRawToDer } from '../../../src/issuers/x509/ecdsa-signature.js';
import { ecdsaRawToDer, verifyJwsSignature } from '../../../src/verifiers/signature.js';

/**
 * The node:crypto signature check must say what jose's `compactVerify` says for every token
 * and key that reach it: the Wycheproof JWS vectors, and a matrix of every accepted algorithm
 * against keys of every type, size and curve, with good, tampered and foreign signatures.
 */
const FIXTURES = '../shared/fixtures/wycheproof';

async function joseVerdict(
  token: string,
  alg: AcceptedAlgorithm,
  key: KeyObject,
): Promise<boolean> {
  try {
    await compactVerify(token, key, { algorithms: [alg] });
    return true;
  } catch {
    return false;
  }
}

function nodeVerdict(token: string, alg: AcceptedAlgorithm, key: KeyObject): boolean {
  const jws = parseCompactJws(token);
  return verifyJwsSignature(
    alg,
    key,
    Buffer.from(token.slice(0, token.lastIndexOf('.')), 'latin1'),
    jws.signature,
  );
}

interface Group {
  comment: string;
  public?: Record<string, unknown> | { keys: Record<string, unknown>[] };
  tests: Array<{ tcId: number; comment: string; jws: unknown; result: string }>;
}

describe('verifyJwsSignature agrees with jose on the Wycheproof JWS vectors', () => {
  const groups = (
    JSON.parse(readFileSync(`${FIXTURES}/json_web_signature_test.json`, 'utf8')) as {
      testGroups: Group[];
    }
  ).testGroups;
  const rows = groups.flatMap((group) => {
    const jwks: unknown[] =
      group.public && 'keys' in group.public
        ? (group.public.keys as unknown[])
        : group.public
          ? [group.public]
          : [];
    const keys = jwks.flatMap((jwk): KeyObject[] => {
      const checked = checkJwk(jwk);
      return checked.ok ? [checked.key.key] : [];
    });
    return group.tests.flatMap((vector) => {
      if (typeof vector.jws !== 'string') return [];
      let alg: AcceptedAlgorithm;
      try {
        alg = checkHeader(parseCompactJws(vector.jws).header);
      } catch {
        return []; // refused before any signature check
      }
      return keys.map((key, index) => ({
        name: `tc${vector.tcId}-key${index}-${vector.result}`,
        token: vector.jws as string,
        alg,
        key,
      }));
    });
  });

  test('reaches the signature check for many vectors, valid and not', () => {
    expect(rows.length).toBeGreaterThan(150);
  });

  test.each(rows)('$name', async ({ token, alg, key }) => {
    expect(nodeVerdict(token, alg, key)).toBe(await joseVerdict(token, alg, key));
  });
});

describe('verifyJwsSignature agrees with jose across algorithms and key types', () => {
  const pairs = {
    'rsa-2048': generateKeyPairSync('rsa', { modulusLength: 2048 }),
    'rsa-1024': generateKeyPairSync('rsa', { modulusLength: 1024 }),
    'p-256': generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    'p-384': generateKeyPairSync('ec', { namedCurve: 'P-384' }),
    'p-521': generateKeyPairSync('ec', { namedCurve: 'P-521' }),
    ed25519: generateKeyPairSync('ed25519'),
    ed448: generateKeyPairSync('ed448'),
  };
  const signerFor: Record<AcceptedAlgorithm, keyof typeof pairs> = {
    RS256: 'rsa-2048',
    RS384: 'rsa-2048',
    RS512: 'rsa-2048',
    PS256: 'rsa-2048',
    PS384: 'rsa-2048',
    PS512: 'rsa-2048',
    ES256: 'p-256',
    ES384: 'p-384',
    ES512: 'p-521',
    EdDSA: 'ed25519',
  };
  const hashOf = (alg: AcceptedAlgorithm) => (alg === 'EdDSA' ? null : `sha${alg.slice(2)}`);
  const signToken = (
    alg: AcceptedAlgorithm,
    key: KeyObject,
    options: { saltLength?: number } = {},
  ) => {
    const input = `${Buffer.from(JSON.stringify({ alg })).toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}`;
    const padding = alg.startsWith('PS')
      ? {
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: options.saltLength ?? Number(alg.slice(2)) / 8,
        }
      : {};
    const signature = sign(hashOf(alg), Buffer.from(input), {
      key,
      dsaEncoding: 'ieee-p1363',
      ...padding,
    });
    return `${input}.${signature.toString('base64url')}`;
  };
  const flipLastSignatureBit = (token: string) => {
    const dot = token.lastIndexOf('.');
    const signature = Buffer.from(token.slice(dot + 1), 'base64url');
    signature.writeUInt8(signature.readUInt8(signature.length - 1) ^ 1, signature.length - 1);
    return `${token.slice(0, dot)}.${signature.toString('base64url')}`;
  };
  const dropLastSignatureByte = (token: string) => {
    const dot = token.lastIndexOf('.');
    return `${token.slice(0, dot)}.${Buffer.from(token.slice(dot + 1), 'base64url')
      .subarray(1)
      .toString('base64url')}`;
  };

  const rows = ACCEPTED_ALGORITHMS.flatMap((alg) => {
    const good = signToken(alg, pairs[signerFor[alg]].privateKey);
    const tokens: Record<string, string> = {
      good,
      tampered: flipLastSignatureBit(good),
      truncated: dropLastSignatureByte(good),
    };
    if (alg.startsWith('PS'))
      tokens['other-salt-length'] = signToken(alg, pairs['rsa-2048'].privateKey, {
        saltLength: 20,
      });
    // jose's EdDSA is Ed25519 only: an Ed448 signature labelled EdDSA is refused even with its own key.
    if (alg === 'EdDSA') tokens['ed448-signed'] = signToken(alg, pairs.ed448.privateKey);
    if (alg === 'RS256') tokens['rsa-1024-signed'] = signToken(alg, pairs['rsa-1024'].privateKey);
    return Object.entries(tokens).flatMap(([kind, token]) =>
      Object.entries(pairs).map(([keyName, pair]) => ({
        name: `${alg}/${kind}/${keyName}`,
        alg,
        token,
        key: pair.publicKey,
        signer: keyName === signerFor[alg],
      })),
    );
  });

  test.each(rows)('$name', async ({ alg, token, key }) => {
    expect(nodeVerdict(token, alg, key)).toBe(await joseVerdict(token, alg, key));
  });

  test('ok/good-signatures-verify-with-the-signer-key', () => {
    const verified = rows.filter(
      (row) =>
        row.name.includes('/good/') && row.signer && nodeVerdict(row.token, row.alg, row.key),
    );
    expect(verified.map((row) => row.alg)).toEqual([...ACCEPTED_ALGORITHMS]);
  });

  test('fail/private-key-objects-never-verify', () => {
    const token = signToken('ES256', pairs['p-256'].privateKey);
    expect(nodeVerdict(token, 'ES256', pairs['p-256'].privateKey)).toBe(false);
    expect(nodeVerdict(token, 'ES256', createPublicKey(pairs['p-256'].privateKey))).toBe(true);
  });
});

describe('ecdsaRawToDer', () => {
  test('ok/matches-the-strict-x509-encoder-for-every-curve-width', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(32, 48, 66)
          .chain((size) =>
            fc.tuple(
              fc.uint8Array({ minLength: size, maxLength: size }),
              fc.uint8Array({ minLength: size, maxLength: size }),
            ),
          ),
        ([r, s]) => {
          fc.pre(r.some((byte) => byte !== 0) && s.some((byte) => byte !== 0));
          const raw = Uint8Array.from([...r, ...s]);
          expect(Buffer.from(ecdsaRawToDer(raw)).toString('hex')).toBe(
            Buffer.from(strictRawToDer(raw)).toString('hex'),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  test.each([
    [
      'high-bit-r-gets-a-zero-byte',
      `ff${'00'.repeat(31)}${'01'.repeat(32)}`,
      `3045022100ff${'00'.repeat(31)}0220${'01'.repeat(32)}`,
    ],
    [
      'leading-zeros-are-dropped',
      `${'00'.repeat(31)}05${'00'.repeat(30)}0102`,
      '300702010502020102',
    ],
  ])('ok/%s', (_name, raw, der) => {
    expect(ecdsaRawToDer(Buffer.from(raw, 'hex')).toString('hex')).toBe(der);
  });
});
