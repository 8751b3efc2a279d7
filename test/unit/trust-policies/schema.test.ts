import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { listPolicyFiles, policyJsonSchema } from '../../../src/trust-policies/index.js';
import { parseOperator } from '../../../src/trust-policies/operators.js';

describe('policies/schema.json', () => {
  it('is the schema generated from the zod schema (run `npm run schema` when this fails)', () => {
    const committed = JSON.parse(readFileSync('policies/schema.json', 'utf8')) as unknown;
    expect(committed).toEqual(policyJsonSchema());
  });

  it('accepts every shipped policy file, which each reference it', () => {
    const validate = new Ajv2020({ strict: false }).compile(policyJsonSchema());
    for (const file of listPolicyFiles('policies')) {
      const text = readFileSync(file, 'utf8');
      expect(text.startsWith('# yaml-language-server: $schema=./schema.json\n'), file).toBe(true);
      expect(validate(parse(text)), `${file}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('names only operators the loader accepts in its descriptions', () => {
    const descriptions =
      JSON.stringify(policyJsonSchema()).match(/IAM condition operators \(([^)]*)\)/g) ?? [];
    expect(descriptions.length).toBeGreaterThan(0);
    const named = descriptions.flatMap((text) =>
      (/\(([^)]*)\)/.exec(text)?.[1] ?? '').split(', ').map((name) => name.replace(/…$/, '')),
    );
    expect(named.filter((name) => typeof parseOperator(name) === 'string')).toEqual([]);
  });

  it('rejects a misspelt field, as the loader does', () => {
    const validate = new Ajv2020({ strict: false }).compile(policyJsonSchema());
    const text = readFileSync(
      'test/unit/trust-policies/fixtures/lint/unknown-field/role.yaml',
      'utf8',
    );
    expect(validate(parse(text))).toBe(false);
  });
});
