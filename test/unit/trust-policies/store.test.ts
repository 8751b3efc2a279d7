import {
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, createMetrics } from '../../../src/observability/index.js';
import {
  createPolicyStore,
  loadPolicySet,
  PolicyLoadError,
} from '../../../src/trust-policies/index.js';
import { RACY_WINDOW_MS, readPolicyDirectory } from '../../../src/trust-policies/load.js';
import type { PolicySet, PolicyStore } from '../../../src/trust-policies/types.js';
import { allow, deny, guardrailText, identity, input, roleText } from './helpers.js';

const namespaceRole = (name: string, namespace: string) =>
  roleText(name, [allow({ StringEquals: { 'kubernetes.io/namespace': namespace } })]);

function decide(set: PolicySet, role: string, namespace: string): string {
  const compiled = set.roles.get(role);
  if (!compiled) return 'absent';
  return set.decide(compiled, input(identity({ namespace }))).decision;
}

describe('policy store (hot reload)', () => {
  let dir: string;
  let logs: string[];
  let store: (PolicyStore & { reload(): boolean }) | undefined;
  const logger = () =>
    createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk, _encoding, callback) {
          logs.push(String(chunk));
          callback();
        },
      }),
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-policies-'));
    logs = [];
  });
  afterEach(async () => {
    await store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('fail/startup-with-invalid-file-is-fatal', () => {
    writeFileSync(
      join(dir, 'bad.yaml'),
      'apiVersion: tessera.dev/v1\nkind: Role\nmetadata: { name: x }\n',
    );
    expect(() => createPolicyStore({ dir, logger: logger(), watch: false })).toThrow(
      PolicyLoadError,
    );
    try {
      createPolicyStore({ dir, logger: logger(), watch: false });
    } catch (error) {
      expect((error as Error).message).toBe(
        `invalid trust policies:\n${join(dir, 'bad.yaml')}:1:1: trustPolicy: is required\n${join(dir, 'bad.yaml')}:1:1: issue: is required`,
      );
    }
  });

  it('ok/add-change-break-fix-delete-while-reading', async () => {
    const metrics = createMetrics();
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
    const reloads: PolicySet[] = [];
    store = createPolicyStore({
      dir,
      logger: logger(),
      metrics,
      watch: false,
      onReload: (set) => reloads.push(set),
    });
    const s = store;
    const started = s.current();
    expect(decide(started, 'a', 'prod')).toBe('allow');

    // add
    writeFileSync(join(dir, 'b.yaml'), namespaceRole('b', 'dev'));
    expect(s.reload()).toBe(true);
    expect(decide(s.current(), 'b', 'dev')).toBe('allow');
    // a request that started before keeps its set
    expect(started.roles.has('b')).toBe(false);

    // change
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'staging'));
    expect(s.reload()).toBe(true);
    expect(decide(s.current(), 'a', 'staging')).toBe('allow');
    expect(decide(s.current(), 'a', 'prod')).toBe('deny');

    // break: the last good version stays in force, and never the broken one, however often it is reloaded
    writeFileSync(
      join(dir, 'a.yaml'),
      namespaceRole('a', 'qa').replace('StringEquals', 'StringEqualz'),
    );
    for (let pass = 0; pass < 3; pass += 1) {
      expect(s.reload()).toBe(false);
      expect(decide(s.current(), 'a', 'staging')).toBe('allow');
      expect(decide(s.current(), 'a', 'qa')).toBe('deny');
    }
    const failures = logs.filter((line) => line.includes('not reloaded'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(`${join(dir, 'a.yaml')}:1:`);
    expect(failures[0]).toContain('unknown condition operator \\"StringEqualz\\"');

    // a new file clashing with an existing role name does not take effect while the clash lasts
    writeFileSync(join(dir, 'c.yaml'), namespaceRole('b', 'other'));
    // fix
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'qa'));
    s.reload();
    expect(decide(s.current(), 'a', 'qa')).toBe('allow');
    expect(decide(s.current(), 'b', 'other')).toBe('deny');

    // delete: the role moves to the file that clashed, as a restart would load it
    unlinkSync(join(dir, 'b.yaml'));
    expect(s.reload()).toBe(true);
    expect(decide(s.current(), 'b', 'other')).toBe('allow');
    expect(decide(s.current(), 'b', 'dev')).toBe('deny');
    unlinkSync(join(dir, 'c.yaml'));
    expect(s.reload()).toBe(true);
    expect(s.current().roles.has('b')).toBe(false);

    const counts = Object.fromEntries(
      (await metrics.policyReloads.get()).values.map((v): [string, number] => [
        String(v.labels.result),
        v.value,
      ]),
    );
    expect(counts.failure).toBeGreaterThanOrEqual(2);
    expect(counts.success).toBe(reloads.length);
    expect(reloads.length).toBeGreaterThanOrEqual(4);
  });

  it('ok/a-change-is-in-force-after-one-poll-interval-even-if-no-watch-event-arrives', () => {
    // Fake timers stand in for the clock: the poll is what guarantees the reload (ConfigMap
    // symlink swaps and network filesystems may send no watch event), so one interval suffices.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
      store = createPolicyStore({ dir, logger: logger(), pollMs: 1000 });
      writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'staging'));
      vi.advanceTimersByTime(1000);
      expect(decide(store.current(), 'a', 'staging')).toBe('allow');
    } finally {
      vi.useRealTimers();
    }
  });

  /** Files that exist but cannot be read, made with real filesystem faults (root reads through chmod 000, so no EACCES here). */
  const unreadable: Array<{ name: string; make: (path: string) => void; reason: string }> = [
    {
      name: 'dangling-symlink',
      make: (path) => symlinkSync(join(dir, 'missing.yaml'), path),
      reason: 'ENOENT (dangling symlink)',
    },
    { name: 'symlink-loop', make: (path) => symlinkSync(path, path), reason: 'ELOOP' },
  ];

  it.each(unreadable)('fail/startup-$name-is-fatal', ({ make, reason }) => {
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
    make(join(dir, 'guardrails.yaml'));
    const expected = `invalid trust policies:\n${join(dir, 'guardrails.yaml')}:1:1: cannot read file: ${reason}`;
    expect(() => createPolicyStore({ dir, logger: logger(), watch: false })).toThrow(expected);
    expect(() => loadPolicySet(dir)).toThrow(expected);
  });

  it.each(unreadable)('ok/reload-$name-keeps-the-last-good-guardrail', async ({ make, reason }) => {
    const metrics = createMetrics();
    const guardrails = join(dir, 'guardrails.yaml');
    writeFileSync(join(dir, 'a.yaml'), roleText('a', [allow()]));
    writeFileSync(
      guardrails,
      guardrailText('baseline', [
        deny({ StringEquals: { 'kubernetes.io/namespace': 'kube-system' } }),
      ]),
    );
    store = createPolicyStore({ dir, logger: logger(), metrics, watch: false });
    expect(decide(store.current(), 'a', 'kube-system')).toBe('deny');
    unlinkSync(guardrails);
    make(guardrails);
    expect([store.reload(), store.reload(), store.reload()]).toEqual([false, false, false]);
    expect(decide(store.current(), 'a', 'kube-system')).toBe('deny');
    const failures = logs.filter((line) => line.includes('not reloaded'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(`${guardrails}:1:1: cannot read file: ${reason}`);
    expect(
      (await metrics.policyReloads.get()).values.map((v) => [v.labels.result, v.value]),
    ).toEqual([['failure', 1]]);
  });

  it('ok/configmap-symlink-swap-is-followed', () => {
    // The kubelet's layout: name -> ..data/name, ..data -> ..<timestamp>, swapped by rename.
    const version = (name: string, namespace: string) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'a.yaml'), namespaceRole('a', namespace));
      symlinkSync(name, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    version('..2024_01', 'prod');
    symlinkSync(join('..data', 'a.yaml'), join(dir, 'a.yaml'));
    store = createPolicyStore({ dir, logger: logger(), watch: false });
    expect(decide(store.current(), 'a', 'prod')).toBe('allow');
    version('..2024_02', 'staging');
    expect(store.reload()).toBe(true);
    expect([decide(store.current(), 'a', 'prod'), decide(store.current(), 'a', 'staging')]).toEqual(
      ['deny', 'allow'],
    );
  });

  const moves: Array<{
    name: string;
    steps: Array<(from: string, to: string) => void>;
    expected: string;
  }> = [
    {
      name: 'ok/role-moved-write-new-then-delete-old',
      steps: [(_, to) => writeFileSync(to, namespaceRole('r', 'dev')), (from) => unlinkSync(from)],
      expected: 'dev',
    },
    {
      name: 'ok/role-moved-rename-old-file-away',
      steps: [
        (_, to) => writeFileSync(to, namespaceRole('r', 'dev')),
        (from) => writeFileSync(from, namespaceRole('other', 'x')),
      ],
      expected: 'dev',
    },
    {
      name: 'ok/role-moved-in-one-pass',
      steps: [(from, to) => (writeFileSync(to, namespaceRole('r', 'dev')), unlinkSync(from))],
      expected: 'dev',
    },
    {
      name: 'fail/clash-still-in-force-keeps-the-first',
      steps: [(_, to) => writeFileSync(to, namespaceRole('r', 'dev'))],
      expected: 'prod',
    },
  ];

  it.each(moves)('$name', ({ steps, expected }) => {
    const from = join(dir, 'a.yaml');
    const to = join(dir, 'b.yaml');
    writeFileSync(from, namespaceRole('r', 'prod'));
    store = createPolicyStore({ dir, logger: logger(), watch: false });
    for (const step of steps) {
      step(from, to);
      store.reload();
    }
    const set = store.current();
    expect(['prod', 'dev'].filter((namespace) => decide(set, 'r', namespace) === 'allow')).toEqual([
      expected,
    ]);
    // A restart loads the same set.
    if (expected === 'dev')
      expect(
        decide(createPolicyStore({ dir, logger: logger(), watch: false }).current(), 'r', 'dev'),
      ).toBe('allow');
  });

  it('ok/changes-are-followed-once-files-are-old-enough-to-be-skipped-when-unchanged', () => {
    // A clock a minute ahead: every file is past the racy window, so a poll reads only what
    // stat shows changed. Each change below moves the size or the inode, as real edits do.
    const later = () => Date.now() + 60_000;
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
    store = createPolicyStore({ dir, logger: logger(), watch: false, now: later });
    expect(store.reload()).toBe(false);
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'staging'));
    expect(store.reload()).toBe(true);
    expect(decide(store.current(), 'a', 'staging')).toBe('allow');
    // An editor's atomic save: a same-size file renamed over the old one.
    writeFileSync(join(dir, '.a.yaml.swp'), namespaceRole('a', 'testing'));
    renameSync(join(dir, '.a.yaml.swp'), join(dir, 'a.yaml'));
    expect(store.reload()).toBe(true);
    expect(decide(store.current(), 'a', 'testing')).toBe('allow');
    writeFileSync(join(dir, 'b.yaml'), namespaceRole('b', 'dev'));
    expect(store.reload()).toBe(true);
    unlinkSync(join(dir, 'a.yaml'));
    expect(store.reload()).toBe(true);
    expect([...store.current().roles.keys()]).toEqual(['b']);
  });

  it('ok/deleting-a-broken-file-forgets-it', () => {
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
    store = createPolicyStore({ dir, logger: logger(), watch: false });
    writeFileSync(join(dir, 'a.yaml'), '{ not yaml');
    expect(store.reload()).toBe(false);
    expect(decide(store.current(), 'a', 'prod')).toBe('allow');
    unlinkSync(join(dir, 'a.yaml'));
    expect(store.reload()).toBe(true);
    expect(store.current().roles.size).toBe(0);
  });
});

describe('policy directory scan', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-scan-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const later = () => Date.now() + RACY_WINDOW_MS + 60_000;
  const stamps = (scan: ReturnType<typeof readPolicyDirectory>) =>
    new Map([...scan].map(([path, file]) => [path, file.stamp]));
  const readPaths = (scan: ReturnType<typeof readPolicyDirectory>) =>
    [...scan].filter(([, file]) => file.read !== undefined).map(([path]) => path);

  it('ok/an-unchanged-file-is-examined-not-read', () => {
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
    writeFileSync(join(dir, 'b.yaml'), namespaceRole('b', 'prod'));
    const first = readPolicyDirectory(dir, { now: later });
    expect(readPaths(first)).toEqual([join(dir, 'a.yaml'), join(dir, 'b.yaml')]);
    const second = readPolicyDirectory(dir, { known: stamps(first), now: later });
    expect(readPaths(second)).toEqual([]);
    expect(stamps(second)).toEqual(stamps(first));
  });

  it('ok/a-changed-or-replaced-file-is-read-again', () => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, namespaceRole('a', 'prod'));
    writeFileSync(b, namespaceRole('b', 'prod'));
    const known = stamps(readPolicyDirectory(dir, { now: later }));
    writeFileSync(a, namespaceRole('a', 'staging'));
    // Same size, new inode: a rename over the old file (editors, kubelet's ConfigMap swap).
    writeFileSync(join(dir, '.b.tmp'), namespaceRole('b', 'prox'));
    renameSync(join(dir, '.b.tmp'), b);
    const scan = readPolicyDirectory(dir, { known, now: later });
    expect(readPaths(scan)).toEqual([a, b]);
    expect(scan.get(b)?.read).toEqual({ text: namespaceRole('b', 'prox') });
  });

  it('ok/a-file-changed-within-the-racy-window-is-read-on-every-scan', () => {
    // Timestamps are coarse: a same-size rewrite inside one tick leaves every stat field as it
    // was, so a stamp taken that soon after a change is not one to skip a read on.
    writeFileSync(join(dir, 'a.yaml'), namespaceRole('a', 'prod'));
    const now = () => Date.now();
    const first = readPolicyDirectory(dir, { now });
    expect(first.get(join(dir, 'a.yaml'))?.stamp).toBeUndefined();
    const second = readPolicyDirectory(dir, { known: stamps(first), now });
    expect(readPaths(second)).toEqual([join(dir, 'a.yaml')]);
  });
});
