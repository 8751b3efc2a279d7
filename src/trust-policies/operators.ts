/**
 * IAM condition operators, compiled once: each turns the policy's values into a predicate
 * "does this one request value match any of the expected values" (values OR). Negation,
 * IfExists and the set qualifiers are applied by the caller (conditions.ts), as in AWS.
 */

export type Matcher = (value: unknown) => boolean;

interface OperatorSpec {
  negated: boolean;
  /** Compile the expected values; a string is the reason they are unusable. */
  compile(expected: unknown[]): Matcher | string;
}

const stringOf = (value: unknown): string | undefined =>
  typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : undefined;

function stringMatcher(transform: (s: string) => string): OperatorSpec['compile'] {
  return (expected) => {
    const wanted = new Set(expected.map((e) => transform(String(e))));
    return (value) => {
      const text = stringOf(value);
      return text !== undefined && wanted.has(transform(text));
    };
  };
}

/**
 * `*` matches any run of characters, `?` exactly one; `${*}`, `${?}` and `${$}` are the
 * literal characters, as in AWS policy variables.
 */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const literal = /^\$\{([*?$])\}/.exec(glob.slice(i));
    if (literal) {
      source += escapeRegExp(literal[1] as string);
      i += literal[0].length - 1;
    } else if (glob[i] === '*') source += '.*';
    else if (glob[i] === '?') source += '.';
    else source += escapeRegExp(glob[i] as string);
  }
  return new RegExp(`^${source}$`, 's');
}

const escapeRegExp = (text: string) => text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

const likeMatcher: OperatorSpec['compile'] = (expected) => {
  const patterns = expected.map((e) => globToRegExp(String(e)));
  return (value) => {
    const text = stringOf(value);
    return text !== undefined && patterns.some((pattern) => pattern.test(text));
  };
};

function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value.trim()))
    return Number(value);
  return undefined;
}

/** Epoch seconds (number or numeric string) or an ISO 8601 date, in ms. */
function toEpochMs(value: unknown): number | undefined {
  const seconds = toNumber(value);
  if (seconds !== undefined) return seconds * 1000;
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

function toBool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value))
    return value.toLowerCase() === 'true';
  return undefined;
}

function comparing(
  kind: string,
  parse: (value: unknown) => number | undefined,
  compare: (seen: number, wanted: number) => boolean,
): OperatorSpec['compile'] {
  return (expected) => {
    const wanted = expected.map(parse);
    const bad = expected.find((_, i) => wanted[i] === undefined);
    if (bad !== undefined) return `${JSON.stringify(bad)} is not a ${kind}`;
    return (value) => {
      const seen = parse(value);
      return seen !== undefined && (wanted as number[]).some((w) => compare(seen, w));
    };
  };
}

const eq = (a: number, b: number) => a === b;
const lt = (a: number, b: number) => a < b;
const le = (a: number, b: number) => a <= b;
const gt = (a: number, b: number) => a > b;
const ge = (a: number, b: number) => a >= b;

const spec = (negated: boolean, compile: OperatorSpec['compile']): OperatorSpec => ({
  negated,
  compile,
});
const numeric = (compare: (a: number, b: number) => boolean) =>
  comparing('number', toNumber, compare);
const date = (compare: (a: number, b: number) => boolean) =>
  comparing('date (ISO 8601 or epoch seconds)', toEpochMs, compare);
const identity = (s: string) => s;
const lower = (s: string) => s.toLowerCase();

export const OPERATORS: Record<string, OperatorSpec> = {
  StringEquals: spec(false, stringMatcher(identity)),
  StringNotEquals: spec(true, stringMatcher(identity)),
  StringEqualsIgnoreCase: spec(false, stringMatcher(lower)),
  StringNotEqualsIgnoreCase: spec(true, stringMatcher(lower)),
  StringLike: spec(false, likeMatcher),
  StringNotLike: spec(true, likeMatcher),
  NumericEquals: spec(false, numeric(eq)),
  NumericNotEquals: spec(true, numeric(eq)),
  NumericLessThan: spec(false, numeric(lt)),
  NumericLessThanEquals: spec(false, numeric(le)),
  NumericGreaterThan: spec(false, numeric(gt)),
  NumericGreaterThanEquals: spec(false, numeric(ge)),
  DateEquals: spec(false, date(eq)),
  DateNotEquals: spec(true, date(eq)),
  DateLessThan: spec(false, date(lt)),
  DateLessThanEquals: spec(false, date(le)),
  DateGreaterThan: spec(false, date(gt)),
  DateGreaterThanEquals: spec(false, date(ge)),
  Bool: spec(false, (expected) => {
    const wanted = expected.map(toBool);
    const bad = expected.find((_, i) => wanted[i] === undefined);
    if (bad !== undefined) return `${JSON.stringify(bad)} is not true or false`;
    return (value) => {
      const seen = toBool(value);
      return seen !== undefined && wanted.includes(seen);
    };
  }),
};

const QUALIFIERS = ['ForAnyValue', 'ForAllValues'] as const;
export type Qualifier = (typeof QUALIFIERS)[number];

export interface ParsedOperator {
  qualifier?: Qualifier;
  base: string;
  ifExists: boolean;
}

/** `ForAnyValue:StringLikeIfExists` → parts; a string is the reason it is not an operator. */
export function parseOperator(name: string): ParsedOperator | string {
  let rest = name;
  let qualifier: Qualifier | undefined;
  const colon = name.indexOf(':');
  if (colon >= 0) {
    const prefix = name.slice(0, colon);
    if (!(QUALIFIERS as readonly string[]).includes(prefix)) {
      return `unknown condition qualifier "${prefix}:" (expected ForAnyValue: or ForAllValues:)`;
    }
    qualifier = prefix as Qualifier;
    rest = name.slice(colon + 1);
  }
  const ifExists = rest.endsWith('IfExists');
  const base = ifExists ? rest.slice(0, -'IfExists'.length) : rest;
  if (base === 'Null') {
    if (ifExists) return 'Null cannot take IfExists';
    if (qualifier) return `Null cannot take ${qualifier}:`;
    return { base, ifExists };
  }
  if (!Object.hasOwn(OPERATORS, base)) {
    const guess = closest(base, [...Object.keys(OPERATORS), 'Null']);
    return `unknown condition operator "${rest}"${guess ? ` (did you mean ${guess}${ifExists ? 'IfExists' : ''}?)` : ''}`;
  }
  return { ...(qualifier ? { qualifier } : {}), base, ifExists };
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}
