/**
 * `JSON.parse` keeps the last of duplicated members, so `{"alg":"RS256","alg":"none"}` means
 * different things to different parsers. This scanner walks the text once, refuses duplicate
 * member names at any depth, and only then hands the text to `JSON.parse`.
 */

const MAX_DEPTH = 32;

export class StrictJsonError extends Error {
  /** The member name that appears twice in one object, when that is the problem. */
  readonly duplicateMember: string | undefined;

  constructor(message: string, duplicateMember?: string) {
    super(message);
    this.name = 'StrictJsonError';
    this.duplicateMember = duplicateMember;
  }
}

/** Parses `text` as JSON, refusing duplicate member names and nesting deeper than 32. */
export function parseStrictJson(text: string): unknown {
  const end = scanValue(text, skipSpace(text, 0), 0);
  if (skipSpace(text, end) !== text.length) throw new StrictJsonError('trailing characters');
  return JSON.parse(text);
}

function skipSpace(text: string, at: number): number {
  let index = at;
  while (index < text.length && ' \t\n\r'.includes(text[index] as string)) index += 1;
  return index;
}

function scanValue(text: string, at: number, depth: number): number {
  if (depth > MAX_DEPTH) throw new StrictJsonError('nested too deeply');
  const char = text[at];
  if (char === '{') return scanObject(text, at, depth + 1);
  if (char === '[') return scanArray(text, at, depth + 1);
  if (char === '"') return scanString(text, at);
  const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(at, at + 400));
  if (!literal) throw new StrictJsonError(`unexpected character at ${at}`);
  return at + literal[0].length;
}

function scanString(text: string, at: number): number {
  let index = at + 1;
  while (index < text.length) {
    const char = text[index];
    if (char === '"') return index + 1;
    if (char === '\\') index += text[index + 1] === 'u' ? 6 : 2;
    else if ((char as string).charCodeAt(0) < 0x20) throw new StrictJsonError('control character in string');
    else index += 1;
  }
  throw new StrictJsonError('unterminated string');
}

function scanObject(text: string, at: number, depth: number): number {
  const names = new Set<string>();
  let index = skipSpace(text, at + 1);
  if (text[index] === '}') return index + 1;
  for (;;) {
    if (text[index] !== '"') throw new StrictJsonError(`expected a member name at ${index}`);
    const nameEnd = scanString(text, index);
    // JSON.parse of the literal alone decodes escapes, so "a" and "\u0061" collide as they should.
    const name = JSON.parse(text.slice(index, nameEnd)) as string;
    if (names.has(name)) throw new StrictJsonError(`duplicate member ${JSON.stringify(name)}`, name);
    names.add(name);
    index = skipSpace(text, nameEnd);
    if (text[index] !== ':') throw new StrictJsonError(`expected ':' at ${index}`);
    index = skipSpace(text, scanValue(text, skipSpace(text, index + 1), depth));
    if (text[index] === '}') return index + 1;
    if (text[index] !== ',') throw new StrictJsonError(`expected ',' or '}' at ${index}`);
    index = skipSpace(text, index + 1);
  }
}

function scanArray(text: string, at: number, depth: number): number {
  let index = skipSpace(text, at + 1);
  if (text[index] === ']') return index + 1;
  for (;;) {
    index = skipSpace(text, scanValue(text, index, depth));
    if (text[index] === ']') return index + 1;
    if (text[index] !== ',') throw new StrictJsonError(`expected ',' or ']' at ${index}`);
    index = skipSpace(text, index + 1);
  }
}
