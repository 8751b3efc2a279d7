import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify, createLocalJWKSet, importJWK, jwtVerify, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type KeysConfig } from '../../src/config/index.js';
import { createMemoryCache } from '../../src/cache/index.js';
import { silentLogger } from '../../src/observability/index.js';
import {
  createKeyProvider,
  publicJwks,
  signJws,
  type JwsAlgorithm,
  type KeyProvider,
  type KeyProviderDeps,
} from '../../src/keys/index.js';
import { createSoftHsmToken, skipSoftHsm, type SoftHsmToken } from '../support/softhsm.js';

/**
 * The contract every key provider honours (STYLE.md §5), run against `local` and `pkcs11`
 * (SoftHSM2, a fresh token per test so state never leaks between tests).
 */
interface Backend {
  name: 'local' | 'pkcs11';
  skip: () => boolean;
  setup(): void;
  teardown(): void;
  /** A fresh key store for one test. */
  fresh(): { config: (keys?: Record<string, unknown>) => KeysConfig; env: NodeJS.ProcessEnv };
}

const PIN_ENV = 'TESSERA_TEST_PKCS11_PIN';
const keysConfig = (keys: Record<string, unknown>): KeysConfig =>
  parseConfig({ issuer: 'https://sts.test', audience: 'sts.test', keys }).keys;

const roots: string[] = [];
const localBackend: Backend = {
  name: 'local',
  skip: () => false,
  setup() {},
  teardown() {
    for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
  },
  fresh() {
    const root = mkdtempSync(join(tmpdir(), 'tessera-keys-'));
    roots.push(root);
    return {
      config: (keys = {}) => keysConfig({ provider: 'local', dir: join(root, 'keys'), ...keys }),
      env: {},
    };
  },
};

let token: SoftHsmToken | undefined;
const TOKENS = 12;
let nextToken = 0;
const hsmBackend: Backend = {
  name: 'pkcs11',
  skip: () => skipSoftHsm(),
  setup() {
    token = createSoftHsmToken({ label: 'contract-0' });
    // Every token exists before the module is first initialised (SoftHSM2 scans at C_Initialize).
    for (let index = 1; index < TOKENS; index += 1) token.addToken(`contract-${index}`);
  },
  teardown() {
    token?.cleanup();
  },
  fresh() {
    const label = `contract-${nextToken++}`;
    const hsm = token as SoftHsmToken;
    return {
      config: (keys = {}) =>
        keysConfig({
          provider: 'pkcs11',
          module: hsm.module,
          tokenLabel: label,
          pinEnv: PIN_ENV,
          ...keys,
        }),
      env: { [PIN_ENV]: hsm.pin },
    };
  },
};

const encoder = new TextEncoder();

for (const backend of [localBackend, hsmBackend]) {
  describe.skipIf(backend.skip())(`keys contract: ${backend.name}`, () => {
    beforeAll(() => backend.setup());
    afterAll(() => backend.teardown());

    const open = (
      config: KeysConfig,
      env: NodeJS.ProcessEnv,
      deps: Partial<KeyProviderDeps> = {},
    ): Promise<KeyProvider> =>
      createKeyProvider(config, { logger: silentLogger(), env, autoRotate: false, ...deps });

    it.each(['ES256', 'RS256', 'PS256'] as const)(
      'ok/signature-verifies-with-jose/%s',
      async (alg) => {
        const store = backend.fresh();
        const provider = await open(
          store.config({ algorithms: ['ES256', 'RS256', 'PS256'] }),
          store.env,
        );
        try {
          const key = await provider.signingKey(alg);
          const jwks = createLocalJWKSet(await publicJwks(provider));
          const jwt = await signJws(
            key,
            { typ: 'JWT' },
            { sub: 'system:serviceaccount:default:demo', exp: 4102444800 },
          );
          const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { algorithms: [alg] });
          expect(protectedHeader).toEqual({ typ: 'JWT', alg, kid: key.kid });
          expect(payload.sub).toBe('system:serviceaccount:default:demo');
          const published = (await provider.publishedKeys()).find(
            (entry) => entry.jwk.kid === key.kid,
          );
          expect(published?.state).toBe('active');
          expect(published?.jwk).toMatchObject({ alg, use: 'sig', kid: key.kid });
          expect(Object.keys(published?.jwk ?? {}).sort()).toEqual(
            alg === 'ES256'
              ? ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']
              : ['alg', 'e', 'kid', 'kty', 'n', 'use'],
          );
        } finally {
          await provider.close();
        }
      },
    );

    it('ok/concurrent-signatures-all-verify', async () => {
      const store = backend.fresh();
      const provider = await open(store.config(), store.env);
      try {
        const jwks = createLocalJWKSet(await publicJwks(provider));
        const jwts = await Promise.all(
          Array.from({ length: 64 }, async (_, index) =>
            signJws(await provider.signingKey(index % 2 ? 'RS256' : 'ES256'), {}, { n: index }),
          ),
        );
        const verified = await Promise.all(
          jwts.map(async (jwt) => (await jwtVerify(jwt, jwks)).payload.n),
        );
        expect(verified).toEqual(Array.from({ length: 64 }, (_, index) => index));
      } finally {
        await provider.close();
      }
    });

    it('ok/restart-keeps-the-same-kids', async () => {
      const store = backend.fresh();
      const first = await open(store.config(), store.env);
      const before = {
        es: (await first.signingKey('ES256')).kid,
        rs: (await first.signingKey('RS256')).kid,
        ca: (await first.namedKey('x509-ca', 'ES256')).kid,
      };
      await first.close();
      const second = await open(store.config(), store.env);
      try {
        expect({
          es: (await second.signingKey('ES256')).kid,
          rs: (await second.signingKey('RS256')).kid,
          ca: (await second.namedKey('x509-ca', 'ES256')).kid,
        }).toEqual(before);
        expect((await publicJwks(second)).keys.map((jwk) => jwk.kid).sort()).toEqual(
          [before.es, before.rs].sort(),
        );
      } finally {
        await second.close();
      }
    });

    it('ok/named-key-signs-and-is-not-published', async () => {
      const store = backend.fresh();
      const provider = await open(store.config(), store.env);
      try {
        const ca = await provider.namedKey('x509-ca', 'ES256');
        const signingInput = `${Buffer.from(JSON.stringify({ alg: 'ES256' })).toString('base64url')}.${Buffer.from('tbs').toString('base64url')}`;
        const signature = await ca.sign(encoder.encode(signingInput));
        const jws = `${signingInput}.${Buffer.from(signature).toString('base64url')}`;
        await expect(
          compactVerify(jws, await importJWK(ca.publicJwk, 'ES256')),
        ).resolves.toBeDefined();
        expect((await publicJwks(provider)).keys.map((jwk) => jwk.kid)).not.toContain(ca.kid);
        expect((await provider.namedKey('x509-ca', 'ES256')).kid).toBe(ca.kid);
      } finally {
        await provider.close();
      }
    });

    it('fail/unconfigured-algorithm', async () => {
      const store = backend.fresh();
      const provider = await open(store.config({ algorithms: ['ES256'] }), store.env);
      try {
        await expect(provider.signingKey('PS256')).rejects.toMatchObject({
          code: 'temporarily_unavailable',
          reason: 'signing_algorithm_not_configured',
          status: 503,
          description: 'no PS256 signing key is configured',
        });
        expect(await provider.ready()).toBe(true);
      } finally {
        await provider.close();
      }
    });

    it('ok/rotation-every-token-verifies-against-a-jwks-one-cache-period-old', async () => {
      const jwksCacheSeconds = 300;
      const maxTokenLifetimeSeconds = 3600;
      const every = 1200;
      const step = 60;
      const start = 1_800_000_000;
      let clock = start;
      const store = backend.fresh();
      const provider = await open(
        store.config({ algorithms: ['ES256', 'RS256'], rotation: { every, overlap: 600 } }),
        store.env,
        {
          now: () => clock * 1000,
          jwksCacheSeconds,
          maxTokenLifetimeSeconds,
          syncSeconds: 30,
          cache: createMemoryCache({ now: () => clock * 1000 }),
        },
      );
      try {
        const snapshots = new Map<number, JWK[]>();
        const lastSigned = new Map<string, number>();
        const used: Record<JwsAlgorithm, string[]> = { ES256: [], RS256: [], PS256: [] };
        for (; clock <= start + 4 * every + maxTokenLifetimeSeconds + 600; clock += step) {
          await provider.refresh();
          const jwks = (await publicJwks(provider)).keys;
          snapshots.set(clock, jwks);
          const kids = new Set(jwks.map((jwk) => jwk.kid));
          // Retired keys stay until every token they signed has expired (+ leeway).
          for (const [kid, signedAt] of lastSigned)
            if (clock <= signedAt + maxTokenLifetimeSeconds + 60)
              expect(kids, `kid ${kid} at +${clock - start}s`).toContain(kid);
          if (clock > start + 4 * every) continue; // stop signing; let the retired keys age out
          for (const alg of ['ES256', 'RS256'] as const) {
            const key = await provider.signingKey(alg);
            if (used[alg].at(-1) !== key.kid) used[alg].push(key.kid);
            lastSigned.set(key.kid, clock);
            const jwt = await signJws(
              key,
              { typ: 'JWT' },
              { iat: clock, exp: clock + maxTokenLifetimeSeconds },
            );
            const cachedAt = clock - jwksCacheSeconds;
            const cached = snapshots.get(Math.max(start, cachedAt)) as JWK[];
            await expect(
              jwtVerify(jwt, createLocalJWKSet({ keys: cached }), {
                currentDate: new Date(clock * 1000),
              }),
            ).resolves.toBeDefined();
          }
        }
        // Four rotations each; every key that signed and was retired has been removed since.
        expect(used.ES256.length).toBe(5);
        expect(used.RS256.length).toBe(5);
        expect(new Set([...used.ES256, ...used.RS256]).size).toBe(10);
        const remaining = new Set((await provider.list()).map((info) => info.kid));
        expect(
          [...used.ES256.slice(0, -1), ...used.RS256.slice(0, -1)].filter((kid) =>
            remaining.has(kid),
          ),
        ).toEqual([]);
      } finally {
        await provider.close();
      }
    });

    it('ok/rotate-publishes-then-activates', async () => {
      let clock = 1_800_000_000;
      const store = backend.fresh();
      const deps = { now: () => clock * 1000, jwksCacheSeconds: 300, syncSeconds: 30 };
      const provider = await open(store.config({ algorithms: ['ES256'] }), store.env, deps);
      try {
        const first = (await provider.signingKey('ES256')).kid;
        const afterRotate = await provider.rotate();
        expect(afterRotate.map((info) => [info.state, info.activateAt])).toEqual([
          ['active', undefined],
          ['next', clock + 330],
        ]);
        const next = afterRotate[1]?.kid;
        expect((await publicJwks(provider)).keys.map((jwk) => jwk.kid)).toEqual([first, next]);
        clock += 329;
        await provider.refresh();
        expect((await provider.signingKey('ES256')).kid).toBe(first);
        clock += 1;
        await provider.refresh();
        expect((await provider.signingKey('ES256')).kid).toBe(next);
        expect((await provider.list()).map((info) => [info.kid, info.state])).toEqual([
          [first, 'retired'],
          [next, 'active'],
        ]);
        const immediate = await provider.rotate({ immediate: true });
        expect(immediate.map((info) => info.state)).toEqual(['retired', 'retired', 'active']);
        expect((await provider.signingKey('ES256')).kid).toBe(immediate[2]?.kid);
      } finally {
        await provider.close();
      }
    });
  });
}
