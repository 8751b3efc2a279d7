import { escapeControl } from '../terminal/index.js';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

/** A problem found in a policy file, positioned in the YAML (1-based line and column). */
export interface Problem {
  file: string;
  line: number;
  col: number;
  severity: 'error' | 'warning';
  message: string;
}

export type Path = ReadonlyArray<string | number>;

/** A parsed policy file that can point at any path inside it. */
export interface PolicySource {
  file: string;
  /** The file's text as read, for the policy set's version digest. */
  text: string;
  data: unknown;
  /** Syntax problems; when non-empty `data` is unusable. */
  syntax: Problem[];
  /** Position of the value at `path` (or of its key, with `key: true`); the nearest existing ancestor otherwise. */
  at(path: Path, options?: { key?: boolean }): { line: number; col: number };
  problem(
    path: Path,
    message: string,
    options?: { key?: boolean; severity?: Problem['severity'] },
  ): Problem;
}

/** YAML and JSON alike (JSON is YAML 1.2), so JSON files get positions too. */
export function parseSource(file: string, text: string): PolicySource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const position = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, col };
  };
  const syntax: Problem[] = doc.errors.map((error) => ({
    file,
    ...position(error.pos[0]),
    severity: 'error' as const,
    message: firstLine(error.message),
  }));
  const at: PolicySource['at'] = (path, options = {}) => {
    const offset = locate(doc, path, options.key === true);
    return position(offset);
  };
  return {
    file,
    text,
    data: syntax.length > 0 ? undefined : doc.toJS({ maxAliasCount: 50 }),
    syntax,
    at,
    problem: (path, message, options = {}) => ({
      file,
      ...at(path, options),
      severity: options.severity ?? 'error',
      message,
    }),
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
}

function locate(doc: Document, path: Path, wantKey: boolean): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const part = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => (isScalar(item.key) ? String(item.key.value) : String(item.key)) === String(part),
      );
      if (!pair) return offset;
      const keyStart = rangeStart(pair.key);
      if (last && wantKey && keyStart !== undefined) return keyStart;
      node = pair.value;
      offset = rangeStart(node) ?? keyStart ?? offset;
    } else if (isSeq(node) && typeof part === 'number') {
      node = node.items[part];
      offset = rangeStart(node) ?? offset;
    } else {
      return offset;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** `file:line:col: message`, with `warning: ` for warnings. */
export function formatProblem(problem: Problem): string {
  const prefix = problem.severity === 'warning' ? 'warning: ' : '';
  // Messages quote keys and values of the file as written: one escaped line each.
  return escapeControl(
    `${problem.file}:${problem.line}:${problem.col}: ${prefix}${problem.message}`,
  );
}
