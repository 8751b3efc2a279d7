import { Environment } from '@marcbachmann/cel-js';
import type { EvaluationInput } from './types.js';

/**
 * CEL conditions: for what IAM operators cannot say. An expression sees `claims` (the subject
 * token's claims), `cluster` (the cluster name), `request` (`audience`, `scope`, `token_type`)
 * and `now` (a timestamp). Compiled and type-checked at load time. CEL has no loops, and the
 * structural limits below bound an expression's size; the time budget catches what is left
 * (a comprehension over a large claim): an evaluation past it fails closed.
 */

/** Per evaluation; an expression over a 16 KiB token runs in microseconds. */
export const CEL_TIME_BUDGET_MS = 10;

const environment = new Environment({
  limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
})
  .registerVariable('claims', 'map')
  .registerVariable('cluster', 'string')
  .registerVariable('request', 'map')
  .registerVariable('now', 'google.protobuf.Timestamp');

export interface CelResult {
  /** true only when the expression evaluated to boolean true within budget. */
  value: boolean;
  /** The raw result, or the error, for traces. */
  seen: unknown;
  note?: string;
}

export type CelProgram = (input: EvaluationInput) => CelResult;

/** Compile an expression; a string is the parse or type error. */
export function compileCel(expression: string, budgetMs = CEL_TIME_BUDGET_MS): CelProgram | string {
  let program: ReturnType<Environment['parse']>;
  try {
    program = environment.parse(expression);
  } catch (error) {
    return `CEL: ${firstLine(error)}`;
  }
  const checked = program.check();
  if (!checked.valid) return `CEL: ${firstLine(checked.error)}`;
  if (checked.type !== 'bool' && checked.type !== 'dyn') return `CEL: expression must be a bool, not ${checked.type}`;
  return (input) => {
    const started = performance.now();
    let result: unknown;
    try {
      result = program({
        claims: input.identity.claims,
        cluster: input.identity.cluster,
        request: { audience: input.request.audience, scope: input.request.scope, token_type: input.request.tokenType },
        now: new Date(input.now * 1000),
      });
    } catch (error) {
      return { value: false, seen: null, note: `error: ${firstLine(error)}` };
    }
    const elapsed = performance.now() - started;
    if (elapsed > budgetMs) return { value: false, seen: null, note: `time budget of ${budgetMs} ms exceeded` };
    if (typeof result !== 'boolean') return { value: false, seen: null, note: 'result is not a bool' };
    return { value: result, seen: result };
  };
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
