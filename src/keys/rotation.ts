import type { JwsAlgorithm, KeyRecord } from './types.js';

/**
 * The rotation model, as a pure function of the stored records and the clock, so every
 * replica that reads the same records reaches the same decisions.
 *
 *   next ──(activateAt reached)──▶ active ──(its successor activates)──▶ retired ──(retention)──▶ removed
 *
 * A `next` key is published at least `publishDelay` seconds (JWKS cache period + state sync
 * interval) before it signs, so a relying party holding a cached JWKS never meets an unknown
 * kid. A retired key stays published `retention` seconds (max token lifetime + leeway + sync)
 * so every token it signed verifies until it expires.
 */
export interface RotationPolicy {
  algorithms: readonly JwsAlgorithm[];
  /** Seconds an active key signs before its successor takes over; undefined: no schedule. */
  every?: number;
  /** Seconds before a scheduled rotation that the successor appears (≥ publishDelay). */
  lead: number;
  publishDelay: number;
  retention: number;
}

export type RotationAction =
  | { kind: 'create'; alg: JwsAlgorithm; state: 'active' | 'next'; activateAt?: number }
  | { kind: 'update'; record: KeyRecord }
  | { kind: 'remove'; kid: string };

export interface RotationRequest {
  /** Rotate these algorithms now (as early as the publish delay allows, or at once). */
  force?: readonly JwsAlgorithm[];
  immediate?: boolean;
  /** Only create keys for algorithms that have none (`keys generate`). */
  createOnly?: boolean;
}

/** The actions that bring `records` up to date at `now` (Unix seconds). */
export function planRotation(records: readonly KeyRecord[], policy: RotationPolicy, now: number, request: RotationRequest = {}): RotationAction[] {
  const actions: RotationAction[] = [];
  const algorithms = new Set<JwsAlgorithm>([...policy.algorithms, ...records.map((record) => record.alg)]);
  for (const alg of algorithms) {
    const own = records.filter((record) => record.alg === alg);
    if (request.createOnly) {
      if (policy.algorithms.includes(alg) && !own.some((record) => record.state !== 'retired')) actions.push(firstKey(alg, policy, now, records.length > 0));
      continue;
    }
    actions.push(...planAlgorithm(alg, own, policy, now, request, records));
  }
  return actions;
}

function planAlgorithm(
  alg: JwsAlgorithm,
  own: KeyRecord[],
  policy: RotationPolicy,
  now: number,
  request: RotationRequest,
  records: readonly KeyRecord[],
): RotationAction[] {
  const actions: RotationAction[] = [];
  const retire = (record: KeyRecord): void => {
    actions.push({ kind: 'update', record: { ...record, state: 'retired', retiredAt: now } });
  };

  // Several actives (two replicas raced, or a crash mid-rotation): the latest one wins.
  const actives = own.filter((record) => record.state === 'active').sort((a, b) => (b.activatedAt ?? 0) - (a.activatedAt ?? 0));
  const active = actives[0];
  actives.slice(1).forEach(retire);
  // Several nexts: keep the oldest (published longest); the others never signed anything.
  const nexts = own.filter((record) => record.state === 'next').sort((a, b) => a.createdAt - b.createdAt || a.kid.localeCompare(b.kid));
  let next = nexts[0];
  for (const extra of nexts.slice(1)) actions.push({ kind: 'remove', kid: extra.kid });

  for (const record of own) {
    if (record.state === 'retired' && now >= (record.retiredAt ?? 0) + policy.retention) actions.push({ kind: 'remove', kid: record.kid });
  }

  if (!policy.algorithms.includes(alg)) {
    // Algorithm dropped from the config: stop publishing what never signed, let the rest expire.
    if (active) retire(active);
    if (next) actions.push({ kind: 'remove', kid: next.kid });
    return actions;
  }

  const forced = request.force?.includes(alg) ?? false;
  if (forced && request.immediate) {
    if (active) retire(active);
    actions.push({ kind: 'create', alg, state: 'active' });
    return actions;
  }
  if (!active && !next) {
    actions.push(firstKey(alg, policy, now, records.length > 0));
    return actions;
  }
  if (next && !active && next.activateAt === undefined) {
    // A next without a start time (written by hand or by an older version): it may sign at once
    // only if it was the first key ever published; otherwise it waits out the publish delay.
    const publishedBefore = records.some((record) => record.kid !== next?.kid);
    const activateAt = publishedBefore ? next.createdAt + policy.publishDelay : now;
    next = { ...next, activateAt };
    if (activateAt > now) actions.push({ kind: 'update', record: next });
  }
  if (next && forced) {
    const earliest = Math.max(next.createdAt + policy.publishDelay, now);
    if ((next.activateAt ?? Infinity) > earliest) {
      next = { ...next, activateAt: earliest };
      actions.push({ kind: 'update', record: next });
    }
  }
  // With or without an active key: a relying party may hold a JWKS fetched before `next` existed.
  if (next && now >= (next.activateAt ?? Infinity)) {
    actions.push({ kind: 'update', record: { ...next, state: 'active', activatedAt: now, activateAt: undefined } });
    if (active) retire(active);
    return actions;
  }
  if (!next && active) {
    if (forced) {
      actions.push({ kind: 'create', alg, state: 'next', activateAt: now + policy.publishDelay });
    } else if (policy.every !== undefined) {
      const due = (active.activatedAt ?? active.createdAt) + policy.every;
      if (now >= due - Math.max(policy.lead, policy.publishDelay)) {
        actions.push({ kind: 'create', alg, state: 'next', activateAt: Math.max(due, now + policy.publishDelay) });
      }
    }
  }
  return actions;
}

/**
 * The key of an algorithm that has none. On a first start nothing was ever published, so nobody
 * can hold a JWKS without it and it signs at once; once a JWKS was published (an algorithm added
 * to a running broker, or re-added), relying parties may hold one without it, so it is published
 * for the full delay before it signs, like any successor.
 */
function firstKey(alg: JwsAlgorithm, policy: RotationPolicy, now: number, jwksPublished: boolean): RotationAction {
  return jwksPublished ? { kind: 'create', alg, state: 'next', activateAt: now + policy.publishDelay } : { kind: 'create', alg, state: 'active' };
}

/** When a retired key leaves the JWKS and the store. */
export function removeAfter(record: KeyRecord, policy: Pick<RotationPolicy, 'retention'>): number | undefined {
  return record.state === 'retired' && record.retiredAt !== undefined ? record.retiredAt + policy.retention : undefined;
}

/** Only the record fields of a key (drops the public JWK and undefined times). */
export function recordOf(key: KeyRecord): KeyRecord {
  const record: KeyRecord = { kid: key.kid, alg: key.alg, state: key.state, createdAt: key.createdAt };
  if (key.activateAt !== undefined) record.activateAt = key.activateAt;
  if (key.activatedAt !== undefined) record.activatedAt = key.activatedAt;
  if (key.retiredAt !== undefined) record.retiredAt = key.retiredAt;
  return record;
}
