/**
 * What the `tessera` command prints may come from a token or a file (claims, policy keys and
 * values, certificate subjects, key ids, error messages quoting them). A control character in
 * such a value could move the cursor, clear the screen or start a new line, and so forge output
 * ("decision: ALLOW"); bidirectional overrides could reorder what is shown. Every such value is
 * printed with those characters escaped, JSON-style, so the output shows them instead of
 * obeying them.
 */

/** C0 controls (newline and tab included), DEL, C1 controls (CSI is U+009B), line/paragraph separators, bidi controls. */
const UNSAFE =
  // eslint-disable-next-line no-control-regex -- finding control characters is this module's job
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** What `JSON.stringify` leaves raw: everything above but C0, which it escapes itself. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const hex = (char: string) => `\\u${(char.codePointAt(0) as number).toString(16).padStart(4, '0')}`;

/**
 * `value` with every control character written as an escape (`\n`, `\u001b`, `\u202e`), for
 * one line of human output. Build each output line, then pass it through: the line's own text
 * has no control characters, so only values change.
 *
 * @example escapeControl('sub\u001b[2Jdecision: ALLOW') === 'sub\\u001b[2Jdecision: ALLOW'
 */
export function escapeControl(value: string): string {
  return value.replace(UNSAFE, (char) => SHORT[char] ?? hex(char));
}

/**
 * Text produced by `JSON.stringify` with the characters it leaves raw escaped as `\uXXXX`: still
 * the same JSON to a parser (they can only occur inside strings), harmless to a terminal.
 *
 * @example escapeJson(JSON.stringify({ sub: '\u009b2J' })) === '{"sub":"\\u009b2J"}'
 */
export function escapeJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, hex);
}

/** Several lines of human output, each escaped, joined with newlines (and a final one). */
export function escapeLines(lines: readonly string[]): string {
  return `${lines.map(escapeControl).join('\n')}\n`;
}

/**
 * An error's message for the terminal. A config error lists its problems one a line (each
 * escaped on its own, so a value cannot add a line); any other message is one escaped line.
 */
export function escapeErrorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const problems = (error as { problems?: unknown } | null)?.problems;
  if (
    Array.isArray(problems) &&
    problems.length > 0 &&
    problems.every((problem) => typeof problem === 'string')
  ) {
    return [message.split('\n')[0] ?? '', ...problems.map((problem: string) => `  ${problem}`)]
      .map(escapeControl)
      .join('\n');
  }
  return escapeControl(message);
}
