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
export function planRotation(
  records: readonly KeyRecord[],
  policy: RotationPolicy,
  now: number,
  request: RotationRequest = {},
): RotationAction[] {
  const actions: RotationAction[] = [];
  const algorithms = new Set<JwsAlgorithm>([
    ...policy.algorithms,
    ...records.map((record) => record.alg),
  ]);
  for (const alg of algorithms) {
    const own = records.filter((record) => record.alg === alg);
    if (request.createOnly) {
      if (policy.algorithms.includes(alg) && !own.some((record) => record.state !== 'retired'))
        actions.push(firstKey(alg, policy, now, records.length > 0));
      continue;
    }
    actions.push(...planAlgorithm(alg, own, policy, now, request, records));
  }
  return actions;
}

/** What planning one algorithm needs besides its records. */
interface PlanContext {
  alg: JwsAlgorithm;
  policy: RotationPolicy;
  now: number;
  request: RotationRequest;
  /** Rotate this algorithm now (`keys rotate`). */
  forced: boolean;
  /** Every algorithm's records: whether any JWKS was ever published. */
  records: readonly KeyRecord[];
}

function planAlgorithm(
  alg: JwsAlgorithm,
  own: KeyRecord[],
  policy: RotationPolicy,
  now: number,
  request: RotationRequest,
  records: readonly KeyRecord[],
): RotationAction[] {
  const context: PlanContext = {
    alg,
    policy,
    now,
    request,
    forced: request.force?.includes(alg) ?? false,
    records,
  };
  const { actions, active, next } = tidyUp(own, policy, now);
  return [...actions, ...nextSteps(context, active, next)];
}

const retire = (record: KeyRecord, now: number): RotationAction => ({
  kind: 'update',
  record: { ...record, state: 'retired', retiredAt: now },
});
const remove = (record: KeyRecord): RotationAction => ({ kind: 'remove', kid: record.kid });

/** One active and one next at most, and no retired key kept past its retention. */
function tidyUp(
  own: KeyRecord[],
  policy: RotationPolicy,
  now: number,
): { actions: RotationAction[]; active?: KeyRecord; next?: KeyRecord } {
  // Several actives (two replicas raced, or a crash mid-rotation): the latest one wins.
  const actives = own
    .filter((record) => record.state === 'active')
    .sort((a, b) => (b.activatedAt ?? 0) - (a.activatedAt ?? 0));
  // Several nexts: keep the oldest (published longest); the others never signed anything.
  const nexts = own
    .filter((record) => record.state === 'next')
    .sort((a, b) => a.createdAt - b.createdAt || a.kid.localeCompare(b.kid));
  const expired = own.filter(
    (record) => record.state === 'retired' && now >= (record.retiredAt ?? 0) + policy.retention,
  );
  const actions = [
    ...actives.slice(1).map((record) => retire(record, now)),
    ...nexts.slice(1).map(remove),
    ...expired.map(remove),
  ];
  return { actions, active: actives[0], next: nexts[0] };
}

function nextSteps(
  context: PlanContext,
  active: KeyRecord | undefined,
  next: KeyRecord | undefined,
): RotationAction[] {
  const { alg, policy, now, request, forced } = context;
  const retiring = active ? [retire(active, now)] : [];
  if (!policy.algorithms.includes(alg)) {
    // Algorithm dropped from the config: stop publishing what never signed, let the rest expire.
    return [...retiring, ...(next ? [remove(next)] : [])];
  }
  if (forced && request.immediate) return [...retiring, { kind: 'create', alg, state: 'active' }];
  if (next) return advanceNext(context, next, active);
  if (active) return successor(context, active);
  return [firstKey(alg, policy, now, context.records.length > 0)];
}

/** A next key: given its start time if it has none, brought forward when forced, activated when due. */
function advanceNext(
  context: PlanContext,
  next: KeyRecord,
  active: KeyRecord | undefined,
): RotationAction[] {
  const { policy, now } = context;
  const actions: RotationAction[] = [];
  let scheduled = next;
  if (!active && next.activateAt === undefined) {
    // A next without a start time (written by hand or by an older version): it may sign at once
    // only if it was the first key ever published; otherwise it waits out the publish delay.
    const publishedBefore = context.records.some((record) => record.kid !== next.kid);
    scheduled = {
      ...next,
      activateAt: publishedBefore ? next.createdAt + policy.publishDelay : now,
    };
    if ((scheduled.activateAt ?? now) > now) actions.push({ kind: 'update', record: scheduled });
  }
  if (context.forced) {
    const earliest = Math.max(scheduled.createdAt + policy.publishDelay, now);
    if ((scheduled.activateAt ?? Infinity) > earliest) {
      scheduled = { ...scheduled, activateAt: earliest };
      actions.push({ kind: 'update', record: scheduled });
    }
  }
  // With or without an active key: a relying party may hold a JWKS fetched before `next` existed.
  if (now >= (scheduled.activateAt ?? Infinity)) {
    actions.push({
      kind: 'update',
      record: { ...scheduled, state: 'active', activatedAt: now, activateAt: undefined },
    });
    if (active) actions.push(retire(active, now));
  }
  return actions;
}

/** The successor of an active key without one: now when forced, else `lead` before its scheduled end. */
function successor(context: PlanContext, active: KeyRecord): RotationAction[] {
  const { alg, policy, now } = context;
  if (context.forced)
    return [{ kind: 'create', alg, state: 'next', activateAt: now + policy.publishDelay }];
  if (policy.every === undefined) return [];
  const due = (active.activatedAt ?? active.createdAt) + policy.every;
  if (now < due - Math.max(policy.lead, policy.publishDelay)) return [];
  return [
    { kind: 'create', alg, state: 'next', activateAt: Math.max(due, now + policy.publishDelay) },
  ];
}

/**
 * The key of an algorithm that has none. On a first start nothing was ever published, so nobody
 * can hold a JWKS without it and it signs at once; once a JWKS was published (an algorithm added
 * to a running broker, or re-added), relying parties may hold one without it, so it is published
 * for the full delay before it signs, like any successor.
 */
function firstKey(
  alg: JwsAlgorithm,
  policy: RotationPolicy,
  now: number,
  jwksPublished: boolean,
): RotationAction {
  return jwksPublished
    ? { kind: 'create', alg, state: 'next', activateAt: now + policy.publishDelay }
    : { kind: 'create', alg, state: 'active' };
}

/** When a retired key leaves the JWKS and the store. */
export function removeAfter(
  record: KeyRecord,
  policy: Pick<RotationPolicy, 'retention'>,
): number | undefined {
  return record.state === 'retired' && record.retiredAt !== undefined
    ? record.retiredAt + policy.retention
    : undefined;
}

/** Only the record fields of a key (drops the public JWK and undefined times). */
export function recordOf(key: KeyRecord): KeyRecord {
  const record: KeyRecord = {
    kid: key.kid,
    alg: key.alg,
    state: key.state,
    createdAt: key.createdAt,
  };
  if (key.activateAt !== undefined) record.activateAt = key.activateAt;
  if (key.activatedAt !== undefined) record.activatedAt = key.activatedAt;
  if (key.retiredAt !== undefined) record.retiredAt = key.retiredAt;
  return record;
}
