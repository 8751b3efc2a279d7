import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import type { EvaluationInput } from './types.js';

/**
 * CEL conditions: for what IAM operators cannot say. An expression sees `claims` (the subject
 * token's claims), `cluster` (the cluster name), `request` (`audience`, `scope`, `token_type`)
 * and `now` (a timestamp). Compiled and type-checked at load time. CEL has no loops or
 * recursion; what bounds an evaluation is checked then, structurally, never by a clock during
 * a decision (a GC pause must not turn an allow into a deny): the expression's length and AST
 * size and depth, and no comprehension (`all`, `exists`, `map`…) inside another, so the work is
 * at most linear in the size of the token, itself capped by the request body limit.
 */

const CEL_LIMITS = { maxLength: 2048, maxAstNodes: 1000, maxDepth: 32 } as const;

const environment = new Environment({
  limits: {
    maxAstNodes: CEL_LIMITS.maxAstNodes,
    maxDepth: CEL_LIMITS.maxDepth,
    maxListElements: 100,
    maxMapEntries: 100,
    maxCallArguments: 8,
  },
})
  .registerVariable('claims', 'map')
  .registerVariable('cluster', 'string')
  .registerVariable('request', 'map')
  .registerVariable('now', 'google.protobuf.Timestamp');

/** The macros that iterate over a list or map. */
const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

export interface CelResult {
  /** true only when the expression evaluated to boolean true. */
  value: boolean;
  /** The raw result, or the error, for traces. */
  seen: unknown;
  note?: string;
}

export type CelProgram = (input: EvaluationInput) => CelResult;

/** The name of a comprehension nested in another one, if any. */
function nestedComprehension(node: unknown, inside: boolean): string | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = nestedComprehension(item, inside);
      if (found) return found;
    }
    return undefined;
  }
  const { op, args } = node as ASTNode;
  if (op === 'rcall') {
    const [name, receiver, callArgs] = args;
    const iterates = COMPREHENSIONS.has(name);
    if (iterates && inside) return name;
    // The receiver is evaluated once; the arguments run once per element.
    return (
      nestedComprehension(receiver, inside) ?? nestedComprehension(callArgs, inside || iterates)
    );
  }
  return typeof args === 'object' ? nestedComprehension(args, inside) : undefined;
}

/** Compile an expression; a string is the parse, type or limit error. */
export function compileCel(expression: string): CelProgram | string {
  if (expression.length > CEL_LIMITS.maxLength)
    return `CEL: expression is longer than ${CEL_LIMITS.maxLength} characters`;
  let program: ReturnType<Environment['parse']>;
  try {
    program = environment.parse(expression);
  } catch (error) {
    return `CEL: ${firstLine(error)}`;
  }
  const nested = nestedComprehension(program.ast, false);
  if (nested)
    return `CEL: ${nested}() inside another comprehension is not allowed (its cost would grow with the square of the token)`;
  const checked = program.check();
  if (!checked.valid) return `CEL: ${firstLine(checked.error)}`;
  if (checked.type !== 'bool' && checked.type !== 'dyn')
    return `CEL: expression must be a bool, not ${checked.type}`;
  return (input) => {
    let result: unknown;
    try {
      result = program({
        claims: input.identity.claims,
        cluster: input.identity.cluster,
        request: {
          audience: input.request.audience,
          scope: input.request.scope,
          token_type: input.request.tokenType,
        },
        now: new Date(input.now * 1000),
      });
    } catch (error) {
      return { value: false, seen: null, note: `error: ${firstLine(error)}` };
    }
    if (typeof result !== 'boolean')
      return { value: false, seen: null, note: 'result is not a bool' };
    return { value: result, seen: result };
  };
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
