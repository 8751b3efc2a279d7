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

// Character codes, not one-character strings: the scan runs over every token's header and
// claims, and comparing codes spares a string per character (about a third of the scan's time).
const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function skipSpace(text: string, at: number): number {
  let index = at;
  for (;;) {
    const code = text.charCodeAt(index);
    if (code !== SPACE && code !== TAB && code !== LF && code !== CR) return index;
    index += 1;
  }
}

/** A number or `true`/`false`/`null`, matched where it stands (sticky) rather than on a copied slice. */
const LITERAL = /true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

function scanValue(text: string, at: number, depth: number): number {
  if (depth > MAX_DEPTH) throw new StrictJsonError('nested too deeply');
  const char = text[at];
  if (char === '{') return scanObject(text, at, depth + 1);
  if (char === '[') return scanArray(text, at, depth + 1);
  if (char === '"') return scanString(text, at);
  LITERAL.lastIndex = at;
  const literal = LITERAL.exec(text);
  if (!literal || literal[0].length > 400)
    throw new StrictJsonError(`unexpected character at ${at}`);
  return at + literal[0].length;
}

function scanString(text: string, at: number): number {
  let index = at + 1;
  while (index < text.length) {
    const code = text.charCodeAt(index);
    if (code === QUOTE) return index + 1;
    if (code === BACKSLASH) index += text.charCodeAt(index + 1) === 0x75 /* u */ ? 6 : 2;
    else if (code < 0x20) throw new StrictJsonError('control character in string');
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
    // JSON.parse of the literal alone decodes escapes, so "a" and "\u0061" collide as they should;
    // a name without a backslash is its own text (scanString refused control characters).
    const literal = text.slice(index + 1, nameEnd - 1);
    const name = literal.includes('\\')
      ? (JSON.parse(text.slice(index, nameEnd)) as string)
      : literal;
    if (names.has(name))
      throw new StrictJsonError(`duplicate member ${JSON.stringify(name)}`, name);
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
