import { compileCel } from './cel.js';
import { resolveKey } from './condition-keys.js';
import { OPERATORS, parseOperator, type Matcher } from './operators.js';
import type { CompiledCondition, ConditionTrace, PreparedInput } from './types.js';
import type { Path } from './source.js';

/** Reports a problem at a path relative to the Condition block. */
export type Report = (
  path: Path,
  message: string,
  options?: { key?: boolean; severity?: 'error' | 'warning' },
) => void;

type Block = Record<string, Record<string, unknown> | string | string[]>;

/**
 * Compile a statement's Condition block. AWS IAM semantics: operators AND, keys AND, values OR;
 * a negated operator matches when the value matches none of the values; a missing key makes a
 * condition false except for negated operators and IfExists; ForAllValues is true on an empty
 * or missing key, ForAnyValue false.
 */
export function compileConditions(
  block: Block | undefined,
  effect: 'Allow' | 'Deny',
  report: Report,
): CompiledCondition[] {
  const out: CompiledCondition[] = [];
  for (const [operator, entries] of Object.entries(block ?? {})) {
    if (operator === 'Cel') {
      out.push(...compileCelBlock(entries, effect, report));
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
      const compiled = compileCondition(
        operator,
        parsed,
        key,
        Array.isArray(raw) ? raw : [raw],
        report,
      );
      if (compiled) out.push(compiled);
    }
  }
  return out;
}

/** `Cel: expression` or `Cel: [expressions]`: each one a condition. */
function compileCelBlock(
  entries: Block[string],
  effect: 'Allow' | 'Deny',
  report: Report,
): CompiledCondition[] {
  const expressions =
    typeof entries === 'string' ? [entries] : Array.isArray(entries) ? entries : undefined;
  if (!expressions) {
    report(['Cel'], 'Cel takes an expression or a list of expressions');
    return [];
  }
  return expressions.flatMap((expression, index) => {
    const compiled = compileCelCondition(expression, index, effect);
    if (typeof compiled !== 'string') return [compiled];
    report(typeof entries === 'string' ? ['Cel'] : ['Cel', index], compiled);
    return [];
  });
}

type ParsedOperator = Exclude<ReturnType<typeof parseOperator>, string>;

/** One operator on one key, or `undefined` (reported) when it cannot be compiled. */
function compileCondition(
  operator: string,
  parsed: ParsedOperator,
  key: string,
  expected: unknown[],
  report: Report,
): CompiledCondition | undefined {
  const resolved = resolveKey(key);
  if (typeof resolved === 'string') {
    report([operator, key], resolved, { key: true });
    return undefined;
  }
  const compiled = compileMatcher(operator, parsed, key, expected, report);
  if (!compiled) return undefined;
  warnAboutUse(operator, parsed, key, expected, resolved.multiValued, report);
  const condition: Omit<CompiledCondition, 'evaluate'> = {
    operator,
    baseOperator: parsed.base,
    ...(parsed.qualifier ? { qualifier: parsed.qualifier } : {}),
    ifExists: parsed.ifExists,
    negated: compiled.negated,
    key,
    expected,
  };
  const decide =
    parsed.base === 'Null' ? nullRule(compiled.matcher) : setRule(condition, compiled.matcher);
  return {
    ...condition,
    evaluate(input: PreparedInput): ConditionTrace {
      const seen = resolved.read(input);
      return { operator, key, expected, seen, matched: decide(valuesOf(seen)) };
    },
  };
}

function compileMatcher(
  operator: string,
  parsed: ParsedOperator,
  key: string,
  expected: unknown[],
  report: Report,
): { matcher: Matcher; negated: boolean } | undefined {
  if (parsed.base === 'Null') {
    const wanted = expected.map((value) =>
      typeof value === 'boolean'
        ? value
        : /^(true|false)$/i.test(String(value))
          ? String(value).toLowerCase() === 'true'
          : undefined,
    );
    if (wanted.includes(undefined)) {
      report([operator, key], 'Null takes true (the key is absent) or false (the key is present)');
      return undefined;
    }
    return { matcher: (isMissing) => wanted.includes(isMissing as boolean), negated: false };
  }
  const spec = OPERATORS[parsed.base];
  if (!spec) return undefined;
  const compiled = spec.compile(expected);
  if (typeof compiled === 'string') {
    report([operator, key], `${operator}: ${compiled}`);
    return undefined;
  }
  return { matcher: compiled, negated: spec.negated };
}

/** Valid but probably not what the author meant: lint shows these as warnings. */
function warnAboutUse(
  operator: string,
  parsed: ParsedOperator,
  key: string,
  expected: unknown[],
  multiValued: boolean,
  report: Report,
): void {
  if (parsed.base === 'StringEquals' || parsed.base === 'StringNotEquals') {
    const wildcard = expected.find(
      (value): value is string => typeof value === 'string' && /[*?]/.test(value),
    );
    if (wildcard !== undefined) {
      report(
        [operator, key],
        `${operator} compares "${wildcard}" literally: * and ? are wildcards only in StringLike`,
        { severity: 'warning' },
      );
    }
  }
  if (parsed.qualifier && !multiValued) {
    report(
      [operator, key],
      `${parsed.qualifier}: is for multi-valued keys; "${key}" has one value`,
      { key: true, severity: 'warning' },
    );
  }
}

function valuesOf(seen: unknown): unknown[] {
  if (seen === undefined || seen === null) return [];
  return Array.isArray(seen)
    ? seen.filter((value) => value !== undefined && value !== null)
    : [seen];
}

const nullRule = (matcher: Matcher) => (values: unknown[]) => matcher(values.length === 0);

function setRule(
  condition: Omit<CompiledCondition, 'evaluate'>,
  matchesAny: Matcher,
): (values: unknown[]) => boolean {
  const one = condition.negated ? (value: unknown) => !matchesAny(value) : matchesAny;
  if (condition.qualifier === 'ForAllValues') return (values) => values.every(one);
  if (condition.qualifier === 'ForAnyValue')
    return (values) => (values.length === 0 ? condition.ifExists : values.some(one));
  // No qualifier: a negated operator must hold for every value (the key matches none).
  return (values) => {
    if (values.length === 0) return condition.ifExists || condition.negated;
    return condition.negated ? values.every(one) : values.some(one);
  };
}

function compileCelCondition(
  expression: string,
  index: number,
  effect: 'Allow' | 'Deny',
): CompiledCondition | string {
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
      return {
        operator: 'Cel',
        key,
        expected: [expression],
        seen: result.seen,
        matched,
        ...(result.note ? { note: result.note } : {}),
      };
    },
  };
}
