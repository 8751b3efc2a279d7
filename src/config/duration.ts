/**
 * Durations in config and policy files are Go-style strings (`90s`, `15m`, `1h30m`, `24h`, `7d`)
 * or a number of seconds, as operators of Vault and Kubernetes write them. They are always whole
 * seconds: a lifetime becomes `expires_in` and `exp`, which are integers, so `90.5s`, `1.5h`,
 * `1500ms` and `90.5` are refused rather than rounded one way or the other.
 *
 * @example parseDuration('1h30m') === 5400
 */
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;

/** Whole seconds in `value`, or `undefined` when it is not a duration of whole seconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number')
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  if (!DURATION.test(text)) return undefined;
  let seconds = 0;
  let milliseconds = 0;
  for (const [, amount, unit] of text.matchAll(PART)) {
    if (unit === 'ms') milliseconds += Number(amount);
    else seconds += Number(amount) * (UNIT_SECONDS[unit as string] ?? 0);
  }
  if (milliseconds % 1000 !== 0) return undefined;
  seconds += milliseconds / 1000;
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}

const LOOSE_DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$|^\d+\.\d+$/;

/** Why `value` is not a duration, for load errors: a fraction of a second gets its own message. */
export function durationProblem(value: string | number): string {
  const fractional =
    typeof value === 'number'
      ? Number.isFinite(value) && value >= 0
      : LOOSE_DURATION.test(value.trim());
  return fractional
    ? 'must be a whole number of seconds (such as 90s, 15m or 1h30m)'
    : 'must be a duration such as 90s, 15m, 1h or 24h';
}

/** `3600` → `1h`, for messages. */
export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0 && seconds >= 86400) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0 && seconds >= 3600) return `${seconds / 3600}h`;
  if (seconds % 60 === 0 && seconds >= 60) return `${seconds / 60}m`;
  return `${seconds}s`;
}
