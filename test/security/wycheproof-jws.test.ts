import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { checkJwk, verifyCompactJws, type VerificationKey } from '../../src/verifiers/index.js';

/**
 * Project Wycheproof's JWS and JWK vectors through Tessera's signature layer (strict compact
 * parse, header checks, key checks, jose). A `valid` vector verifies with its key, an `invalid`
 * one is refused — except where Tessera is deliberately stricter, each listed with its reason.
 */
const FIXTURES = '/work/shared/fixtures/wycheproof';

interface Vector {
  tcId: number;
  comment: string;
  jws: unknown;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface Group {
  comment: string;
  public?: Record<string, unknown> | { keys: Record<string, unknown>[] };
  tests: Vector[];
}
const load = (file: string): Group[] =>
  (JSON.parse(readFileSync(`${FIXTURES}/${file}`, 'utf8')) as { testGroups: Group[] }).testGroups;

const SYMMETRIC =
  'HS* is never accepted: subject tokens are verified with public keys only, so an HMAC token is an algorithm-confusion attempt';
/** Valid vectors Tessera refuses on purpose. */
const STRICTER: Record<number, string> = {
  346: 'the key declares alg PS256 but the token uses PS384: a JWK with `alg` verifies only that algorithm (RFC 7517 §4.4)',
  347: 'the key declares alg "ES521", which is no registered JWS algorithm (ES512 is): a key with an unknown alg is skipped at ingestion',
  351: 'the key declares alg "ES521", which is no registered JWS algorithm (ES512 is): a key with an unknown alg is skipped at ingestion',
  350: 'the key declares alg PS256 but the token uses PS384: a JWK with `alg` verifies only that algorithm (RFC 7517 §4.4)',
};

function keysOf(group: Group): VerificationKey[] {
  const jwks: unknown[] =
    group.public && 'keys' in group.public
      ? (group.public.keys as unknown[])
      : group.public
        ? [group.public]
        : [];
  return jwks.flatMap((jwk) => {
    const checked = checkJwk(jwk);
    return checked.ok ? [checked.key] : [];
  });
}

function verdict(jws: unknown, keys: VerificationKey[]): 'valid' | 'invalid' {
  try {
    verifyCompactJws(typeof jws === 'string' ? jws : JSON.stringify(jws), keys);
    return 'valid';
  } catch (error) {
    expect((error as { code?: string }).code).toBe('invalid_request');
    return 'invalid';
  }
}

function expectation(
  group: Group,
  vector: Vector,
): { expected: 'valid' | 'invalid'; why?: string } {
  if (vector.result !== 'valid') return { expected: 'invalid' };
  if (!group.public) return { expected: 'invalid', why: SYMMETRIC };
  const stricter = STRICTER[vector.tcId];
  return stricter ? { expected: 'invalid', why: stricter } : { expected: 'valid' };
}

for (const file of ['json_web_signature_test.json', 'json_web_key_test.json']) {
  describe(`wycheproof/${file}`, () => {
    const rows = load(file).flatMap((group) =>
      group.tests.map((vector) => {
        const { expected, why } = expectation(group, vector);
        const name = `${expected === 'valid' ? 'ok' : 'fail'}/tc${vector.tcId}-${group.comment}-${vector.comment}${why ? ' (stricter)' : ''}`;
        return { name, group, vector, expected };
      }),
    );

    test('covers every vector and accepts some', () => {
      expect(rows.length).toBe(file === 'json_web_signature_test.json' ? 401 : 26);
      expect(rows.filter((row) => row.expected === 'valid').length).toBeGreaterThan(
        20 * Number(file === 'json_web_signature_test.json'),
      );
    });

    test.each(rows)('$name', ({ group, vector, expected }) => {
      expect(verdict(vector.jws, keysOf(group))).toBe(expected);
    });
  });
}
