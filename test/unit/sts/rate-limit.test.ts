import { describe, expect, it } from 'vitest';
import { isTesseraError } from '../../../src/errors.js';
import { createRateLimiter } from '../../../src/sts/rate-limit.js';

function outcome(take: (client: string) => void, client: string): string {
  try {
    take(client);
    return 'ok';
  } catch (error) {
    if (isTesseraError(error))
      return `${error.status} ${error.code} ${error.reason} retry-after=${error.headers?.['Retry-After']}`;
    throw error;
  }
}

describe('rate limiter', () => {
  it('ok/burst-then-limited-then-refilled', () => {
    let clock = 0;
    const take = createRateLimiter({ perSecond: 2, burst: 3, now: () => clock });
    expect([1, 2, 3, 4].map(() => outcome(take, 'a'))).toEqual([
      'ok',
      'ok',
      'ok',
      '429 slow_down rate_limited retry-after=1',
    ]);
    expect(outcome(take, 'b')).toBe('ok');
    clock += 500;
    expect(outcome(take, 'a')).toBe('ok');
    expect(outcome(take, 'a')).toBe('429 slow_down rate_limited retry-after=1');
  });

  it('fail/spraying-addresses-does-not-reset-a-throttled-client', () => {
    const clock = 0;
    const take = createRateLimiter({ perSecond: 1, burst: 2, now: () => clock, maxClients: 3 });
    expect([
      outcome(take, 'attacker'),
      outcome(take, 'attacker'),
      outcome(take, 'attacker'),
    ]).toEqual(['ok', 'ok', '429 slow_down rate_limited retry-after=1']);
    const sprayed = ['s1', 's2', 's3', 's4'].map((client) => outcome(take, client));
    expect(sprayed).toEqual([
      'ok',
      'ok',
      '429 slow_down rate_limit_table_full retry-after=1',
      '429 slow_down rate_limit_table_full retry-after=1',
    ]);
    expect(outcome(take, 'attacker')).toBe('429 slow_down rate_limited retry-after=1');
  });

  it('ok/refilled-clients-are-forgotten-to-make-room', () => {
    let clock = 0;
    const take = createRateLimiter({ perSecond: 1, burst: 1, now: () => clock, maxClients: 2 });
    expect([outcome(take, 'a'), outcome(take, 'b'), outcome(take, 'c')]).toEqual([
      'ok',
      'ok',
      '429 slow_down rate_limit_table_full retry-after=1',
    ]);
    clock += 1000;
    expect(outcome(take, 'c')).toBe('ok');
  });
});
