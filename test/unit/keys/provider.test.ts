import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../../src/cache/index.js';
import { parseConfig } from '../../../src/config/index.js';
import { createKeyProvider } from '../../../src/keys/index.js';
import { createLocalStore } from '../../../src/keys/local.js';
import { createRotatingProvider, ROTATION_LOCK } from '../../../src/keys/provider.js';
import { silentLogger } from '../../../src/observability/index.js';

/** The rotating provider over a real local store, with a frozen clock moved by hand. */
const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});
const freshDir = (): string => {
  const root = mkdtempSync(join(tmpdir(), 'tessera-provider-'));
  roots.push(root);
  return join(root, 'keys');
};
const T = 1_800_000_000;

describe('keys: rotation lock ownership', () => {
  // [name, seconds the store's create takes, whether a peer takes the expired lock meanwhile, lock free afterwards]
  const cases: Array<[string, number, boolean, boolean]> = [
    ['ok/lock-released-after-apply', 0, false, true],
    ['ok/apply-outliving-ttl-leaves-the-peers-lock', 61, true, false],
  ];
  it.each(cases)('%s', async (_name, createSeconds, peerTakesLock, freeAfterwards) => {
    let clock = T * 1000;
    const cache = createMemoryCache({ now: () => clock });
    const store = await createLocalStore({
      dir: freshDir(),
      rsaBits: 2048,
      logger: silentLogger(),
    });
    const slowStore = {
      ...store,
      async create(...args: Parameters<typeof store.create>) {
        const key = await store.create(...args);
        clock += createSeconds * 1000;
        if (peerTakesLock)
          expect(await cache.acquireLock(ROTATION_LOCK, 60_000, 'peer')).toBe(true);
        return key;
      },
    };
    const policy = {
      algorithms: ['ES256'] as const,
      lead: 330,
      publishDelay: 330,
      retention: 3690,
    };
    const provider = await createRotatingProvider({
      store: slowStore,
      policy: { ...policy, algorithms: [...policy.algorithms] },
      logger: silentLogger(),
      cache,
      now: () => clock,
      syncSeconds: 30,
      autoRotate: false,
      applyAtStart: true,
    });
    try {
      expect((await provider.list()).map((key) => key.state)).toEqual(['active']);
      expect(await cache.acquireLock(ROTATION_LOCK, 1000, 'probe')).toBe(freeAfterwards);
      if (peerTakesLock) expect(await cache.releaseLock(ROTATION_LOCK, 'peer')).toBe(true);
    } finally {
      await provider.close();
    }
  });
});

describe('keys: an algorithm added to a running broker', () => {
  it('ok/added-algorithm-waits-the-publish-delay-and-the-replica-stays-ready', async () => {
    let clock = T;
    const dir = freshDir();
    const config = (algorithms: string[]) =>
      parseConfig({
        issuer: 'https://sts.test',
        audience: 'sts.test',
        keys: { provider: 'local', dir, algorithms },
      }).keys;
    const deps = {
      logger: silentLogger(),
      autoRotate: false,
      now: () => clock * 1000,
      jwksCacheSeconds: 300,
      syncSeconds: 30,
    };
    await (await createKeyProvider(config(['ES256']), deps)).close();

    clock += 10;
    const provider = await createKeyProvider(config(['ES256', 'RS256']), deps);
    try {
      const states = async () =>
        (await provider.list()).map((key) => [key.alg, key.state, key.activateAt]);
      expect(await states()).toEqual([
        ['ES256', 'active', undefined],
        ['RS256', 'next', T + 10 + 330],
      ]);
      await expect(provider.signingKey('RS256')).rejects.toMatchObject({
        code: 'temporarily_unavailable',
      });
      expect(await provider.ready()).toBe(true);

      clock += 30;
      await provider.refresh();
      await expect(provider.signingKey('RS256')).rejects.toMatchObject({
        code: 'temporarily_unavailable',
      });

      clock = T + 10 + 330;
      await provider.refresh();
      const rs256 = (await provider.list()).find((key) => key.alg === 'RS256');
      expect((await provider.signingKey('RS256')).kid).toBe(rs256?.kid);
      expect(await states()).toEqual([
        ['ES256', 'active', undefined],
        ['RS256', 'active', undefined],
      ]);
    } finally {
      await provider.close();
    }
  });
});

describe('keys: local lock file ownership', () => {
  it('ok/release-after-a-stale-takeover-leaves-the-peers-lock-file', async () => {
    const dir = freshDir();
    const store = await createLocalStore({ dir, rsaBits: 2048, logger: silentLogger() });
    const release = await store.tryLock?.();
    expect(release).toBeTypeOf('function');
    // Our lock went stale and a peer took it over (it rewrote the file), then we finish.
    writeFileSync(join(dir, 'rotation.lock'), '4242 peer\n');
    await release?.();
    expect(readFileSync(join(dir, 'rotation.lock'), 'utf8')).toBe('4242 peer\n');
  });

  it('ok/release-removes-our-own-lock-file', async () => {
    const dir = freshDir();
    const store = await createLocalStore({ dir, rsaBits: 2048, logger: silentLogger() });
    const release = await store.tryLock?.();
    expect(await store.tryLock?.()).toBeUndefined();
    await release?.();
    expect(existsSync(join(dir, 'rotation.lock'))).toBe(false);
  });
});
