import { describe, expect, it } from 'vitest';
import {
  planRotation,
  type RotationAction,
  type RotationPolicy,
} from '../../../src/keys/rotation.js';
import type { KeyRecord } from '../../../src/keys/types.js';

const policy: RotationPolicy = {
  algorithms: ['ES256'],
  every: 1000,
  lead: 400,
  publishDelay: 330,
  retention: 3690,
};
const T = 10_000;
const active = (kid: string, activatedAt: number): KeyRecord => ({
  kid,
  alg: 'ES256',
  state: 'active',
  createdAt: activatedAt,
  activatedAt,
});
const next = (kid: string, createdAt: number, activateAt: number): KeyRecord => ({
  kid,
  alg: 'ES256',
  state: 'next',
  createdAt,
  activateAt,
});
const retired = (kid: string, retiredAt: number): KeyRecord => ({
  kid,
  alg: 'ES256',
  state: 'retired',
  createdAt: 0,
  activatedAt: 0,
  retiredAt,
});

const cases: Array<
  [
    string,
    KeyRecord[],
    Partial<RotationPolicy>,
    number,
    Parameters<typeof planRotation>[3],
    RotationAction[],
  ]
> = [
  [
    'ok/first-start-creates-active',
    [],
    {},
    T,
    {},
    [{ kind: 'create', alg: 'ES256', state: 'active' }],
  ],
  ['ok/nothing-due', [active('a', T - 500)], {}, T, {}, []],
  [
    'ok/algorithm-added-later-is-published-before-it-signs',
    [active('a', T - 500)],
    { algorithms: ['ES256', 'RS256'] },
    T,
    {},
    [{ kind: 'create', alg: 'RS256', state: 'next', activateAt: T + 330 }],
  ],
  [
    'ok/algorithm-re-added-after-retirement-is-published-first',
    [active('a', T - 500), { ...retired('r', T - 100), alg: 'RS256' }],
    { algorithms: ['ES256', 'RS256'] },
    T,
    {},
    [{ kind: 'create', alg: 'RS256', state: 'next', activateAt: T + 330 }],
  ],
  ['ok/no-schedule-never-rotates', [active('a', 0)], { every: undefined }, T, {}, []],
  [
    'ok/successor-published-lead-before-due',
    [active('a', T - 600)],
    {},
    T,
    {},
    [{ kind: 'create', alg: 'ES256', state: 'next', activateAt: T + 400 }],
  ],
  ['ok/successor-not-yet', [active('a', T - 599)], {}, T, {}, []],
  [
    'ok/late-successor-waits-the-publish-delay',
    [active('a', T - 5000)],
    {},
    T,
    {},
    [{ kind: 'create', alg: 'ES256', state: 'next', activateAt: T + 330 }],
  ],
  ['ok/next-not-yet-active', [active('a', T - 900), next('b', T - 300, T + 1)], {}, T, {}, []],
  [
    'ok/next-activates-and-active-retires',
    [active('a', T - 1000), next('b', T - 400, T)],
    {},
    T,
    {},
    [
      {
        kind: 'update',
        record: {
          kid: 'b',
          alg: 'ES256',
          state: 'active',
          createdAt: T - 400,
          activateAt: undefined,
          activatedAt: T,
        },
      },
      { kind: 'update', record: { ...active('a', T - 1000), state: 'retired', retiredAt: T } },
    ],
  ],
  ['ok/retired-kept-until-retention', [active('a', T - 10), retired('r', T - 3689)], {}, T, {}, []],
  [
    'ok/retired-removed-after-retention',
    [active('a', T - 10), retired('r', T - 3690)],
    {},
    T,
    {},
    [{ kind: 'remove', kid: 'r' }],
  ],
  [
    'ok/force-creates-next-after-publish-delay',
    [active('a', T - 10)],
    {},
    T,
    { force: ['ES256'] },
    [{ kind: 'create', alg: 'ES256', state: 'next', activateAt: T + 330 }],
  ],
  [
    'ok/force-brings-a-published-next-forward',
    [active('a', T - 10), next('b', T - 400, T + 500)],
    {},
    T,
    { force: ['ES256'] },
    [
      { kind: 'update', record: next('b', T - 400, T) },
      {
        kind: 'update',
        record: {
          kid: 'b',
          alg: 'ES256',
          state: 'active',
          createdAt: T - 400,
          activateAt: undefined,
          activatedAt: T,
        },
      },
      { kind: 'update', record: { ...active('a', T - 10), state: 'retired', retiredAt: T } },
    ],
  ],
  [
    'ok/force-never-shortens-publication',
    [active('a', T - 10), next('b', T - 100, T + 500)],
    {},
    T,
    { force: ['ES256'] },
    [{ kind: 'update', record: next('b', T - 100, T + 230) }],
  ],
  [
    'ok/immediate-retires-and-creates-active',
    [active('a', T - 10)],
    {},
    T,
    { force: ['ES256'], immediate: true },
    [
      { kind: 'update', record: { ...active('a', T - 10), state: 'retired', retiredAt: T } },
      { kind: 'create', alg: 'ES256', state: 'active' },
    ],
  ],
  ['ok/force-other-algorithm-untouched', [active('a', T - 10)], {}, T, { force: ['RS256'] }, []],
  [
    'ok/two-actives-latest-wins',
    [active('a', T - 20), active('b', T - 10)],
    {},
    T,
    {},
    [{ kind: 'update', record: { ...active('a', T - 20), state: 'retired', retiredAt: T } }],
  ],
  [
    'ok/two-nexts-oldest-kept',
    [active('a', T - 10), next('c', T - 5, T + 325), next('b', T - 6, T + 324)],
    {},
    T,
    {},
    [{ kind: 'remove', kid: 'c' }],
  ],
  ['ok/next-without-active-waits-for-activate-at', [next('b', T - 5, T + 325)], {}, T, {}, []],
  [
    'ok/next-without-active-activates-at-activate-at',
    [next('b', T - 330, T)],
    {},
    T,
    {},
    [
      {
        kind: 'update',
        record: {
          kid: 'b',
          alg: 'ES256',
          state: 'active',
          createdAt: T - 330,
          activateAt: undefined,
          activatedAt: T,
        },
      },
    ],
  ],
  [
    'ok/next-without-activate-at-first-ever-published-activates-at-once',
    [{ kid: 'b', alg: 'ES256', state: 'next', createdAt: T - 5 }],
    {},
    T,
    {},
    [
      {
        kind: 'update',
        record: {
          kid: 'b',
          alg: 'ES256',
          state: 'active',
          createdAt: T - 5,
          activateAt: undefined,
          activatedAt: T,
        },
      },
    ],
  ],
  [
    'ok/next-without-activate-at-after-a-publication-waits-the-publish-delay',
    [{ kid: 'b', alg: 'RS256', state: 'next', createdAt: T - 5 }, active('a', T - 500)],
    { algorithms: ['ES256', 'RS256'] },
    T,
    {},
    [
      {
        kind: 'update',
        record: { kid: 'b', alg: 'RS256', state: 'next', createdAt: T - 5, activateAt: T + 325 },
      },
    ],
  ],
  [
    'ok/next-without-activate-at-published-long-enough-activates',
    [{ kid: 'b', alg: 'RS256', state: 'next', createdAt: T - 330 }, active('a', T - 500)],
    { algorithms: ['ES256', 'RS256'] },
    T,
    {},
    [
      {
        kind: 'update',
        record: {
          kid: 'b',
          alg: 'RS256',
          state: 'active',
          createdAt: T - 330,
          activateAt: undefined,
          activatedAt: T,
        },
      },
    ],
  ],
  [
    'ok/dropped-algorithm-retires-active-removes-next',
    [
      { ...active('a', T - 10), alg: 'RS256' },
      { ...next('b', T - 5, T + 325), alg: 'RS256' },
      active('e', T - 10),
    ],
    {},
    T,
    {},
    [
      {
        kind: 'update',
        record: { ...active('a', T - 10), alg: 'RS256', state: 'retired', retiredAt: T },
      },
      { kind: 'remove', kid: 'b' },
    ],
  ],
  [
    'ok/create-only-first-start-creates-active',
    [],
    {},
    T,
    { createOnly: true },
    [{ kind: 'create', alg: 'ES256', state: 'active' }],
  ],
  [
    'ok/create-only-after-publication-creates-next',
    [active('a', T - 5000)],
    { algorithms: ['ES256', 'PS256'] },
    T,
    { createOnly: true },
    [{ kind: 'create', alg: 'PS256', state: 'next', activateAt: T + 330 }],
  ],
  [
    'ok/create-only-when-only-retired-left',
    [retired('r', T - 10)],
    {},
    T,
    { createOnly: true },
    [{ kind: 'create', alg: 'ES256', state: 'next', activateAt: T + 330 }],
  ],
  [
    'ok/create-only-skips-a-pending-next',
    [next('b', T - 5, T + 325)],
    {},
    T,
    { createOnly: true },
    [],
  ],
];

/** Applies a plan the way the provider does (creates named `<alg>@<now>`), for multi-step cases. */
function applied(records: KeyRecord[], actions: RotationAction[], now: number): KeyRecord[] {
  let result = [...records];
  for (const action of actions) {
    if (action.kind === 'create') {
      const record: KeyRecord = {
        kid: `${action.alg}@${now}`,
        alg: action.alg,
        state: action.state,
        createdAt: now,
      };
      if (action.activateAt !== undefined) record.activateAt = action.activateAt;
      if (action.state === 'active') record.activatedAt = now;
      result.push(record);
    } else if (action.kind === 'update') {
      result = result.map((record) => (record.kid === action.record.kid ? action.record : record));
    } else {
      result = result.filter((record) => record.kid !== action.kid);
    }
  }
  return result;
}

const signer = (records: KeyRecord[], alg: string): string | undefined =>
  records.find((record) => record.alg === alg && record.state === 'active')?.kid;

describe('keys: planRotation', () => {
  it.each(cases)('%s', (_name, records, overrides, now, request, expected) => {
    expect(planRotation(records, { ...policy, ...overrides }, now, request)).toEqual(expected);
  });
});

describe('keys: planRotation over successive syncs', () => {
  const steps: Array<
    [string, Parameters<typeof planRotation>[3], Array<[number, string | undefined]>]
  > = [
    // [now, the RS256 key that signs after the sync at now]
    [
      'ok/added-algorithm-signs-only-after-the-publish-delay',
      {},
      [
        [T, undefined],
        [T + 30, undefined],
        [T + 329, undefined],
        [T + 330, `RS256@${T}`],
      ],
    ],
    [
      'ok/generated-algorithm-signs-only-after-the-publish-delay',
      { createOnly: true },
      [
        [T, undefined],
        [T + 30, undefined],
        [T + 330, `RS256@${T}`],
      ],
    ],
  ];
  it.each(steps)('%s', (_name, firstRequest, expected) => {
    const rsPolicy: RotationPolicy = { ...policy, algorithms: ['ES256', 'RS256'] };
    let records: KeyRecord[] = [active('a', T - 500)];
    const seen: Array<[number, string | undefined]> = [];
    for (const [index, [now]] of expected.entries()) {
      records = applied(
        records,
        planRotation(records, rsPolicy, now, index === 0 ? firstRequest : {}),
        now,
      );
      seen.push([now, signer(records, 'RS256')]);
    }
    expect(seen).toEqual(expected);
    expect(signer(records, 'ES256')).toBe('a');
  });
});
