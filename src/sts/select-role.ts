import { invalidTarget } from '../errors.js';
import type { CompiledRole, PolicySet } from '../trust-policies/index.js';

const ROLE_URN_PREFIX = 'urn:tessera:role:';

/**
 * The role a request asks for: the one named by `resource` (`NAME` or `urn:tessera:role:NAME`),
 * else the one role whose profile lists every requested audience. Ambiguity is an error, never a guess.
 */
export function selectRole(
  set: PolicySet,
  resource: string | undefined,
  audiences: string[],
): CompiledRole {
  if (resource !== undefined) {
    const name = resource.startsWith(ROLE_URN_PREFIX)
      ? resource.slice(ROLE_URN_PREFIX.length)
      : resource;
    const role = set.roles.get(name);
    if (!role)
      throw invalidTarget('resource names no known role', {
        reason: 'unknown_role',
        detail: { resource },
      });
    return role;
  }
  if (audiences.length === 0)
    throw invalidTarget('resource or audience is required to select a role', {
      reason: 'role_required',
    });
  const candidates = [...set.roles.values()].filter((role) =>
    audiences.every((audience) => role.issue.audiences.includes(audience)),
  );
  if (candidates.length === 0)
    throw invalidTarget('no role issues for the requested audience', {
      reason: 'no_role_for_audience',
      detail: { audiences },
    });
  if (candidates.length > 1) {
    throw invalidTarget('several roles issue for the requested audience; name one with resource', {
      reason: 'ambiguous_role',
      detail: { audiences, roles: candidates.map((role) => role.name) },
    });
  }
  return candidates[0] as CompiledRole;
}

/** The issued audiences: those requested (each must be allowed by the role), else the role's first. */
export function issuedAudiences(role: CompiledRole, requested: string[]): string[] {
  const notAllowed = requested.filter((audience) => !role.issue.audiences.includes(audience));
  if (notAllowed.length > 0) {
    throw invalidTarget(`audience is not allowed for role ${role.name}`, {
      reason: 'audience_not_allowed',
      detail: { role: role.name, audiences: notAllowed },
    });
  }
  if (requested.length > 0) return requested;
  const first = role.issue.audiences[0];
  if (first === undefined)
    throw invalidTarget(`role ${role.name} lists no audience`, { reason: 'role_has_no_audience' });
  return [first];
}
