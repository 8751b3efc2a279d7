import { compileConditions, type Report } from './conditions.js';
import { principalMatcher } from './principals.js';
import { globToRegExp } from './operators.js';
import type { StatementInput } from './schema.js';
import type { CompiledPolicy, CompiledStatement, PreparedInput, StatementTrace } from './types.js';

/** A token exchange is what IRSA calls AssumeRoleWithWebIdentity; a policy may name either. */
const EXCHANGE_ACTIONS = ['sts:TokenExchange', 'sts:AssumeRoleWithWebIdentity'];

export function actionMatches(actions: string[]): boolean {
  return actions.some((action) => {
    const pattern = new RegExp(globToRegExp(action).source, 'is');
    return EXCHANGE_ACTIONS.some((name) => pattern.test(name));
  });
}

const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

export function compilePolicyDocument(
  document: { Statement: StatementInput | StatementInput[] } | undefined,
  source: string,
  report: (
    index: number | undefined,
    path: ReadonlyArray<string | number>,
    message: string,
    options?: Parameters<Report>[2],
  ) => void,
): CompiledPolicy {
  if (!document) return { statements: [] };
  const single = !Array.isArray(document.Statement);
  const statements = list(document.Statement);
  return {
    statements: statements.map((statement, index): CompiledStatement => {
      const at = single ? undefined : index;
      const principals = statement.Principal === '*' ? ['*'] : list(statement.Principal.Federated);
      const actions = list(statement.Action);
      const matchesAction = actionMatches(actions);
      if (!matchesAction) {
        report(
          at,
          ['Action'],
          `Action ${JSON.stringify(statement.Action)} never matches a token exchange (use ${EXCHANGE_ACTIONS.join(' or ')})`,
        );
      }
      const conditions = compileConditions(
        statement.Condition,
        statement.Effect,
        (path, message, options) => report(at, ['Condition', ...path], message, options),
      );
      const matchers = principals.map(principalMatcher);
      return {
        ...(statement.Sid ? { sid: statement.Sid } : {}),
        label: statement.Sid || `${source}:statement[${index}]`,
        effect: statement.Effect,
        source,
        principals,
        actions,
        conditions,
        principalMatches: ({ identity, issuerHostPath }) =>
          matchers.some((matches) => matches(identity.cluster, identity.iss, issuerHostPath)),
        actionMatches: matchesAction,
      };
    }),
  };
}

export function evaluateStatement(
  statement: CompiledStatement,
  input: PreparedInput,
): StatementTrace {
  const principalMatched = statement.principalMatches(input);
  const conditions = statement.conditions.map((condition) => condition.evaluate(input));
  return {
    ...(statement.sid ? { sid: statement.sid } : {}),
    effect: statement.effect,
    source: statement.source,
    principalMatched,
    actionMatched: statement.actionMatches,
    conditions,
    matched:
      principalMatched &&
      statement.actionMatches &&
      conditions.every((condition) => condition.matched),
  };
}
