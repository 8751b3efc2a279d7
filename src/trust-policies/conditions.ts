import { compileCel } from './cel.js';
import { resolveKey } from './condition-keys.js';
import { OPERATORS, parseOperator, type Matcher } from './operators.js';
import type { CompiledCondition, ConditionTrace, PreparedInput } from './types.js';
import type { Path } from './source.js';

/** Reports a problem at a path relative to the Condition block. */
export type Report = (path: Path, message: string, options?: { key?: boolean; severity?: 'error' | 'warning' }) => void;

type Block = Record<string, Record<string, unknown> | string | string[]>;

/**
 * Compile a statement's Condition block. AWS IAM semantics: operators AND, keys AND, values OR;
 * a negated operator matches when the value matches none of the values; a missing key makes a
 * condition false except for negated operators and IfExists; ForAllValues is true on an empty
 * or missing key, ForAnyValue false.
 */
export function compileConditions(block: Block | undefined, effect: 'Allow' | 'Deny', report: Report): CompiledCondition[] {
  const out: CompiledCondition[] = [];
  for (const [operator, entries] of Object.entries(block ?? {})) {
    if (operator === 'Cel') {
      const expressions = typeof entries === 'string' ? [entries] : Array.isArray(entries) ? entries : undefined;
      if (!expressions) {
        report([operator], 'Cel takes an expression or a list of expressions');
        continue;
      }
      expressions.forEach((expression, index) => {
        const compiled = compileCelCondition(expression, index, effect);
        if (typeof compiled === 'string') report(typeof entries === 'string' ? [operator] : [operator, index], compiled);
        else out.push(compiled);
      });
      continue;
    }
    const parsed = parseOperator(operator);
    if (typeof parsed === 'string') {
      report([operator], parsed, { key: true });
      continue;
    }
    if (typeof entries !== 'object' || Array.isArray(entries)) {
      report([operator], `${operator} takes a map of condition keys to values`);
      continue;
    }
    for (const [key, raw] of Object.entries(entries)) {
      const expected = Array.isArray(raw) ? raw : [raw];
      const resolved = resolveKey(key);
      if (typeof resolved === 'string') {
        report([operator, key], resolved, { key: true });
        continue;
      }
      let matcher: Matcher;
      let negated = false;
      if (parsed.base === 'Null') {
        const wanted = expected.map((value) => (typeof value === 'boolean' ? value : /^(true|false)$/i.test(String(value)) ? String(value).toLowerCase() === 'true' : undefined));
        if (wanted.includes(undefined)) {
          report([operator, key], 'Null takes true (the key is absent) or false (the key is present)');
          continue;
        }
        matcher = (isMissing) => wanted.includes(isMissing as boolean);
      } else {
        const spec = OPERATORS[parsed.base];
        if (!spec) continue;
        const compiled = spec.compile(expected);
        if (typeof compiled === 'string') {
          report([operator, key], `${operator}: ${compiled}`);
          continue;
        }
        matcher = compiled;
        negated = spec.negated;
      }
      if (parsed.base === 'StringEquals' || parsed.base === 'StringNotEquals') {
        const wildcard = expected.find((value): value is string => typeof value === 'string' && /[*?]/.test(value));
        if (wildcard !== undefined) {
          report([operator, key], `${operator} compares "${wildcard}" literally: * and ? are wildcards only in StringLike`, {
            severity: 'warning',
          });
        }
      }
      if (parsed.qualifier && !resolved.multiValued) {
        report([operator, key], `${parsed.qualifier}: is for multi-valued keys; "${key}" has one value`, { key: true, severity: 'warning' });
      }
      const condition: Omit<CompiledCondition, 'evaluate'> = {
        operator,
        baseOperator: parsed.base,
        ...(parsed.qualifier ? { qualifier: parsed.qualifier } : {}),
        ifExists: parsed.ifExists,
        negated,
        key,
        expected,
      };
      const decide = parsed.base === 'Null' ? nullRule(matcher) : setRule(condition, matcher);
      out.push({
        ...condition,
        evaluate(input: PreparedInput): ConditionTrace {
          const seen = resolved.read(input);
          return { operator, key, expected, seen, matched: decide(valuesOf(seen)) };
        },
      });
    }
  }
  return out;
}

function valuesOf(seen: unknown): unknown[] {
  if (seen === undefined || seen === null) return [];
  return Array.isArray(seen) ? seen.filter((value) => value !== undefined && value !== null) : [seen];
}

const nullRule = (matcher: Matcher) => (values: unknown[]) => matcher(values.length === 0);

function setRule(condition: Omit<CompiledCondition, 'evaluate'>, matchesAny: Matcher): (values: unknown[]) => boolean {
  const one = condition.negated ? (value: unknown) => !matchesAny(value) : matchesAny;
  if (condition.qualifier === 'ForAllValues') return (values) => values.every(one);
  if (condition.qualifier === 'ForAnyValue') return (values) => (values.length === 0 ? condition.ifExists : values.some(one));
  // No qualifier: a negated operator must hold for every value (the key matches none).
  return (values) => {
    if (values.length === 0) return condition.ifExists || condition.negated;
    return condition.negated ? values.every(one) : values.some(one);
  };
}

function compileCelCondition(expression: string, index: number, effect: 'Allow' | 'Deny'): CompiledCondition | string {
  const program = compileCel(expression);
  if (typeof program === 'string') return program;
  const key = `Cel[${index}]`;
  return {
    operator: 'Cel',
    baseOperator: 'Cel',
    ifExists: false,
    negated: false,
    key,
    expected: [expression],
    evaluate(input) {
      const result = program(input);
      // An expression that cannot be evaluated fails closed: it never allows, and a Deny fires.
      const matched = result.note ? effect === 'Deny' : result.value;
      return { operator: 'Cel', key, expected: [expression], seen: result.seen, matched, ...(result.note ? { note: result.note } : {}) };
    },
  };
}
