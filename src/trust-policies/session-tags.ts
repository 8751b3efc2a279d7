/**
 * AWS session tags carried in an issued JWT (`https://aws.amazon.com/tags`), so one AWS role
 * can serve many clusters with attribute-based access control. AWS refuses a token whose tags
 * break its limits, so they are checked when the policy loads rather than at AssumeRole time.
 */

export const AWS_TAGS_CLAIM = 'https://aws.amazon.com/tags';
export const AWS_TAG_LIMITS = { tags: 50, keyLength: 128, valueLength: 256 } as const;

const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$/u;

type Report = (path: Array<string | number>, message: string, options?: { key?: boolean }) => void;

/**
 * Check the tag claim of `claims` and return the claims with every `principal_tags` value in
 * the array-of-one-string form AWS expects (a policy may write a plain string).
 */
export function normalizeSessionTags(claims: Record<string, unknown>, report: Report): Record<string, unknown> {
  const tags = claims[AWS_TAGS_CLAIM];
  if (tags === undefined) return claims;
  const at = (path: Array<string | number>) => [AWS_TAGS_CLAIM, ...path];
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    report(at([]), `${AWS_TAGS_CLAIM} must be a map with principal_tags and transitive_tag_keys`);
    return claims;
  }
  const { principal_tags: principalTags, transitive_tag_keys: transitive, ...rest } = tags as Record<string, unknown>;
  for (const extra of Object.keys(rest)) report(at([extra]), `unknown field "${extra}" in ${AWS_TAGS_CLAIM} (expected principal_tags, transitive_tag_keys)`);
  if (principalTags === null || typeof principalTags !== 'object' || Array.isArray(principalTags)) {
    report(at(['principal_tags']), 'principal_tags must be a map of tag key to value');
    return claims;
  }
  const entries = Object.entries(principalTags as Record<string, unknown>);
  if (entries.length > AWS_TAG_LIMITS.tags) {
    report(at(['principal_tags']), `AWS allows at most ${AWS_TAG_LIMITS.tags} session tags; principal_tags has ${entries.length}`);
  }
  const normalized: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    if (key.length > AWS_TAG_LIMITS.keyLength) report(at(['principal_tags', key]), `session tag key "${key.slice(0, 20)}…" is longer than ${AWS_TAG_LIMITS.keyLength} characters`, { key: true });
    else if (!TAG_KEY.test(key)) report(at(['principal_tags', key]), `session tag key "${key}" has characters AWS does not allow (letters, digits, spaces, _ . : / = + - @)`, { key: true });
    const values = Array.isArray(value) ? value : [value];
    if (values.length !== 1 || typeof values[0] !== 'string') {
      report(at(['principal_tags', key]), `session tag "${key}" must have exactly one string value`);
      continue;
    }
    const text = values[0] as string;
    if (text.length > AWS_TAG_LIMITS.valueLength) {
      report(at(['principal_tags', key]), `session tag "${key}" value is longer than ${AWS_TAG_LIMITS.valueLength} characters`);
    }
    normalized[key] = [text];
  }
  if (transitive !== undefined) {
    if (!Array.isArray(transitive) || transitive.some((key) => typeof key !== 'string')) {
      report(at(['transitive_tag_keys']), 'transitive_tag_keys must be a list of tag keys');
    } else {
      transitive.forEach((key, index) => {
        if (!Object.hasOwn(normalized, key as string)) report(at(['transitive_tag_keys', index]), `transitive tag key "${String(key)}" is not in principal_tags`);
      });
    }
  }
  return {
    ...claims,
    [AWS_TAGS_CLAIM]: { principal_tags: normalized, ...(transitive !== undefined ? { transitive_tag_keys: transitive } : {}) },
  };
}
