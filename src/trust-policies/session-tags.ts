import { invalidRequest } from '../errors.js';
import { compileClaimValue } from './template.js';
import type { TemplateVars } from './types.js';

/**
 * AWS session tags carried in an issued JWT (`https://aws.amazon.com/tags`), so one AWS role
 * can serve many clusters with attribute-based access control. Tag keys are literal and checked
 * when the policy loads; values are templates, so each is rendered to one string and checked
 * again at issue time: AWS refuses a token whose tags break its limits, and a claim must not be
 * able to shape the tags (a list or an object where one string belongs).
 */

export const AWS_TAGS_CLAIM = 'https://aws.amazon.com/tags';
const AWS_TAG_LIMITS = { tags: 50, keyLength: 128, valueLength: 256 } as const;

/** AWS's character set for tag keys and values (values may also be empty). */
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

type Report = (path: Array<string | number>, message: string, options?: { key?: boolean }) => void;

/** Renders the tag claim for one request; throws `invalid_request` when a rendered value breaks AWS's rules. */
export type SessionTagsRenderer = (vars: TemplateVars) => Record<string, unknown>;

/** A claim's scalar (string, number, boolean) as tag text. */
function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value) ?? '';
}

/** Why a rendered value cannot be a tag value; `undefined` when it can. Never echoes the value. */
function valueProblem(key: string, value: unknown): string | undefined {
  if (typeof value === 'object')
    return `session tag "${key}" must render to one string, not a list or an object`;
  const text = scalarText(value);
  if (text.length > AWS_TAG_LIMITS.valueLength)
    return `session tag "${key}" is longer than ${AWS_TAG_LIMITS.valueLength} characters`;
  if (!TAG_VALUE.test(text))
    return `session tag "${key}" has characters AWS does not allow in a tag value`;
  return undefined;
}

/**
 * Check the tag claim (a policy may write a value as a string or a list of one string) and
 * compile it into a renderer that issues every value in the `["value"]` form AWS expects. A
 * value whose template is exactly one missing variable drops the tag (and its transitive key),
 * as AWS treats an absent tag; any other problem refuses the request.
 */
export function compileSessionTags(tags: unknown, report: Report): SessionTagsRenderer {
  const failed: SessionTagsRenderer = () => ({});
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    report([], `${AWS_TAGS_CLAIM} must be a map with principal_tags and transitive_tag_keys`);
    return failed;
  }
  const {
    principal_tags: principalTags,
    transitive_tag_keys: transitive,
    ...rest
  } = tags as Record<string, unknown>;
  for (const extra of Object.keys(rest))
    report(
      [extra],
      `unknown field "${extra}" in ${AWS_TAGS_CLAIM} (expected principal_tags, transitive_tag_keys)`,
    );
  if (principalTags === null || typeof principalTags !== 'object' || Array.isArray(principalTags)) {
    report(['principal_tags'], 'principal_tags must be a map of tag key to value');
    return failed;
  }
  const entries = Object.entries(principalTags as Record<string, unknown>);
  if (entries.length > AWS_TAG_LIMITS.tags) {
    report(
      ['principal_tags'],
      `AWS allows at most ${AWS_TAG_LIMITS.tags} session tags; principal_tags has ${entries.length}`,
    );
  }
  const values = entries.flatMap(([key, value]) => {
    const compiled = compileTag(key, value, report);
    return compiled ? [[key, compiled] as const] : [];
  });
  const transitiveKeys = checkTransitiveKeys(transitive, principalTags, report);
  return renderTags(values, transitiveKeys);
}

/** One `principal_tags` entry: its key checked against AWS's rules, its value compiled as a template. */
function compileTag(
  key: string,
  value: unknown,
  report: Report,
): ((vars: TemplateVars) => unknown) | undefined {
  const at = ['principal_tags', key];
  if (key.length > AWS_TAG_LIMITS.keyLength)
    report(
      at,
      `session tag key "${key.slice(0, 20)}…" is longer than ${AWS_TAG_LIMITS.keyLength} characters`,
      { key: true },
    );
  else if (!TAG_KEY.test(key))
    report(
      at,
      `session tag key "${key}" has characters AWS does not allow (letters, digits, spaces, _ . : / = + - @)`,
      { key: true },
    );
  const list: unknown[] = Array.isArray(value) ? value : [value];
  const text = list[0];
  if (list.length !== 1 || typeof text !== 'string') {
    report(at, `session tag "${key}" must have exactly one string value`);
    return undefined;
  }
  const compiled = compileClaimValue(text);
  if (typeof compiled === 'string') {
    report(at, compiled);
    return undefined;
  }
  if (!text.includes('{{') && text.length > AWS_TAG_LIMITS.valueLength) {
    report(
      at,
      `session tag "${key}" value is longer than ${AWS_TAG_LIMITS.valueLength} characters`,
    );
  }
  return compiled;
}

function checkTransitiveKeys(
  transitive: unknown,
  principalTags: object,
  report: Report,
): string[] | undefined {
  if (transitive === undefined) return undefined;
  if (
    !Array.isArray(transitive) ||
    !transitive.every((key): key is string => typeof key === 'string')
  ) {
    report(['transitive_tag_keys'], 'transitive_tag_keys must be a list of tag keys');
    return undefined;
  }
  transitive.forEach((key, index) => {
    if (!Object.hasOwn(principalTags, key))
      report(
        ['transitive_tag_keys', index],
        `transitive tag key "${key}" is not in principal_tags`,
      );
  });
  return transitive;
}

function renderTags(
  values: ReadonlyArray<readonly [string, (vars: TemplateVars) => unknown]>,
  transitiveKeys: string[] | undefined,
): SessionTagsRenderer {
  return (vars) => {
    const rendered: Record<string, string[]> = {};
    for (const [key, render] of values) {
      const value = render(vars);
      if (value === undefined || value === null) continue;
      const problem = valueProblem(key, value);
      if (problem)
        throw invalidRequest(`cannot issue the role's AWS session tags: ${problem}`, {
          reason: 'session_tag_invalid',
          detail: { tag: key },
        });
      rendered[key] = [scalarText(value)];
    }
    const keys = transitiveKeys?.filter((key) => Object.hasOwn(rendered, key));
    return { principal_tags: rendered, ...(keys ? { transitive_tag_keys: keys } : {}) };
  };
}
