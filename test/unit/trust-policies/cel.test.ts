import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileCel } from '../../../src/trust-policies/cel.js';
import { identity, input } from './helpers.js';

const withGroups = input(identity({}, { groups: ['a', 'b', 'c'] }));

/** A compiled expression's result on `withGroups`, or its compile error. */
function run(expression: string): unknown {
  const program = compileCel(expression);
  return typeof program === 'string' ? program : program(withGroups);
}

const cases: Array<{ name: string; expression: string; expected: unknown }> = [
  {
    name: 'ok/plain-expression',
    expression: 'cluster == "prod"',
    expected: { value: true, seen: true },
  },
  {
    name: 'ok/one-comprehension',
    expression: 'claims.groups.all(g, g.size() == 1)',
    expected: { value: true, seen: true },
  },
  {
    name: 'ok/comprehensions-in-sequence',
    expression: 'claims.groups.filter(g, g != "a").exists(g, g == "c")',
    expected: { value: true, seen: true },
  },
  {
    name: 'ok/comprehension-on-a-comprehension-result',
    expression: 'claims.groups.map(g, g + "x").all(g, g.endsWith("x"))',
    expected: { value: true, seen: true },
  },
  {
    name: 'fail/nested-comprehension',
    expression: 'claims.groups.all(a, claims.groups.exists(b, a == b))',
    expected:
      'CEL: exists() inside another comprehension is not allowed (its cost would grow with the square of the token)',
  },
  {
    name: 'fail/nested-comprehension-deeper',
    expression: 'claims.groups.exists(a, a == "x" || claims.groups.map(b, b).size() > 0)',
    expected:
      'CEL: map() inside another comprehension is not allowed (its cost would grow with the square of the token)',
  },
  {
    name: 'fail/expression-too-long',
    expression: `cluster == "${'x'.repeat(2040)}"`,
    expected: 'CEL: expression is longer than 2048 characters',
  },
  {
    name: 'fail/not-a-bool',
    expression: 'cluster',
    expected: 'CEL: expression must be a bool, not string',
  },
];

describe('CEL conditions', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each(cases)('$name', ({ expression, expected }) => {
    expect(run(expression)).toEqual(expected);
  });

  // A GC pause or a busy machine is a fault no real part produces on demand: simulate the clock jumping.
  it('ok/a-slow-evaluation-still-decides-by-its-result', () => {
    const program = compileCel('cluster == "prod"');
    if (typeof program === 'string') throw new Error(program);
    let now = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => (now += 1000));
    expect(program(withGroups)).toEqual({ value: true, seen: true });
  });
});
