import { Redis } from 'ioredis';
import { CompactSign } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import {
  generateSigningKey,
  projectedClaims,
  startOidcIssuer,
  type OidcIssuer,
  type SigningKey,
} from '../support/oidc-issuer.js';
import { writePolicies } from '../support/policies.js';
import { requireBinary, startRedis, type TestRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * Whoever can write to the shared Redis must not be able to make a replica trust their keys: an
 * entry that Tessera did not write under that very key, with the replicas' secret, is ignored.
 */
const hasRedis = requireBinary('redis-server');
const AUDIENCE = 'sts.example.com';

const ROLE = `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: prod-reader }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Sid: ProdAny
      Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
issue:
  audiences: [prod-api]
  algorithm: ES256
  maxLifetime: 1h
  defaultLifetime: 15m
`;

describe.skipIf(!hasRedis)('shared cache entries are authenticated', () => {
  let redis: TestRedis;
  let prod: OidcIssuer;
  /** A cluster the attacker controls (a lab cluster also configured): its JWKS is legitimately cached. */
  let lab: OidcIssuer;
  let attackerKey: SigningKey;
  let raw: Redis;
  let policies: string;
  const prodKey = () => `tessera:jwks:${prod.issuer}`;
  const labKey = () => `tessera:jwks:${lab.issuer}`;

  const replica = () =>
    startTestApp({
      clusters: [
        { name: 'prod', issuer: prod.issuer, caFile: prod.caFile, audiences: [AUDIENCE] },
        { name: 'lab', issuer: lab.issuer, caFile: lab.caFile, audiences: [AUDIENCE] },
      ],
      cache: { redis: redis.url },
      policies,
    });
  const exchange = (app: TestApp, subjectToken: string) =>
    postToken(
      app.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        resource: 'prod-reader',
      }),
    );
  /** A token naming prod as its issuer, signed with the attacker's key. */
  const forged = () =>
    new CompactSign(
      Buffer.from(JSON.stringify(projectedClaims(prod.issuer, { audience: AUDIENCE }))),
    )
      .setProtectedHeader({ alg: 'RS256', kid: attackerKey.kid, typ: 'JWT' })
      .sign(attackerKey.privateKey);
  const rejected = async (app: TestApp, reason: string): Promise<number> => {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    const line = text
      .split('\n')
      .find((entry) =>
        entry.startsWith(`tessera_cache_rejected_entries_total{reason="${reason}"}`),
      );
    return Number(line?.split(' ')[1] ?? 0);
  };

  beforeAll(async () => {
    [redis, prod] = await Promise.all([
      startRedis(),
      startOidcIssuer({ path: '/prod', alg: 'RS256' }),
    ]);
    lab = await prod.addIssuer({ path: '/lab', alg: 'RS256' });
    attackerKey = await generateSigningKey('RS256');
    policies = writePolicies({ 'prod-reader.yaml': ROLE });
    raw = new Redis(redis.url);
    // A first replica caches both clusters' keys, as replicas do in normal operation.
    const writer = await replica();
    try {
      await writer.app.verifier.warm();
      await waitFor(
        async () => (await raw.exists(prodKey(), labKey())) === 2,
        'both clusters cached',
      );
    } finally {
      await writer.close();
    }
  });
  afterAll(async () => {
    raw?.disconnect();
    await Promise.all([redis?.stop(), prod?.close()]);
  });

  /** Plants `entry` under prod's JWKS key, then starts a fresh replica that reads it first. */
  const withPlanted = async (
    entry: string,
    check: (app: TestApp) => Promise<void>,
  ): Promise<void> => {
    const genuine = await raw.get(prodKey());
    await raw.set(prodKey(), entry, 'PX', 600_000);
    // As if the refresh window had passed: the new replica may fetch at once.
    const locks = await raw.keys('tessera:jwks-lock:*');
    if (locks.length > 0) await raw.del(...locks);
    const app = await replica();
    try {
      await check(app);
    } finally {
      await app.close();
      if (genuine !== null) await raw.set(prodKey(), genuine, 'PX', 600_000);
    }
  };
  const attackerJwk = () => ({ ...attackerKey.publicJwk, alg: 'RS256' });

  const cases: Array<[string, () => string | Promise<string>, string]> = [
    [
      'fail/tampered-entry-with-an-added-key',
      async () => {
        const genuine = (await raw.get(prodKey())) as string;
        const json = genuine.slice(genuine.indexOf('{'));
        const entry = JSON.parse(json) as { keys: unknown[] };
        entry.keys.push(attackerJwk());
        return genuine.slice(0, genuine.indexOf('{')) + JSON.stringify(entry);
      },
      'mac',
    ],
    [
      'fail/truncated-entry',
      async () => {
        const genuine = (await raw.get(prodKey())) as string;
        return genuine.slice(0, genuine.length - 40);
      },
      'mac',
    ],
    [
      'fail/entry-replayed-from-another-issuer',
      async () => {
        // The lab entry is genuine, sealed by a replica: only its key differs. The attacker signs
        // prod-issued tokens with a key they add to the lab cluster's published keys.
        lab.setJwksOverride({ keys: [attackerJwk()] });
        await raw.del(labKey(), `tessera:jwks-lock:${lab.issuer}`);
        const writer = await replica();
        try {
          await writer.app.verifier.warm();
          await waitFor(
            async () => (await raw.get(labKey()))?.includes(attackerKey.kid) ?? false,
            'the lab keys cached',
          );
        } finally {
          await writer.close();
          lab.setJwksOverride(undefined);
        }
        return (await raw.get(labKey())) as string;
      },
      'mac',
    ],
    [
      'fail/foreign-format-entry',
      () => {
        const now = Date.now();
        return JSON.stringify({
          fetchedAt: now,
          freshUntil: now + 3_600_000,
          keys: [attackerJwk()],
        });
      },
      'format',
    ],
  ];

  for (const [name, plant, reason] of cases) {
    it(name, async () => {
      const entry = await plant();
      await withPlanted(entry, async (app) => {
        const attack = await exchange(app, await forged());
        expect(attack.status).toBe(400);
        expect(attack.json.error).toBe('invalid_request');
        // The entry counts as absent: the replica fetched prod's real keys and serves real tokens.
        const genuine = await exchange(
          app,
          await prod.sign(projectedClaims(prod.issuer, { audience: AUDIENCE })),
        );
        expect(genuine.status).toBe(200);
        expect(await rejected(app, reason)).toBeGreaterThanOrEqual(1);
        const warning = app.logs.lines
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .find((line) => line.msg === 'shared cache entry failed authentication: ignored');
        expect(warning).toMatchObject({ key: `jwks:${prod.issuer}`, reason });
        // Logged without its content.
        expect(app.logs.text()).not.toContain(attackerKey.publicJwk.n as string);
      });
    });
  }

  it('fail/shared-cache-without-secret-refuses-to-start', async () => {
    const config = parseConfig({
      issuer: 'http://127.0.0.1:1',
      audience: 'x',
      cache: { redis: redis.url },
    });
    const failure = createApp(config, { env: {}, watchPolicies: false, processMetrics: false });
    await expect(failure).rejects.toBeInstanceOf(ConfigError);
    await expect(failure).rejects.toThrow(/TESSERA_CACHE_KEY is not set/);
    const named = parseConfig({
      issuer: 'http://127.0.0.1:1',
      audience: 'x',
      cache: { cluster: ['127.0.0.1:7000'], keyEnv: 'SHARED_SECRET' },
    });
    await expect(
      createApp(named, {
        env: { TESSERA_CACHE_KEY: 'not this one' },
        watchPolicies: false,
        processMetrics: false,
      }),
    ).rejects.toThrow(/SHARED_SECRET is not set/);
  });

  it('ok/replicas-with-different-secrets-share-nothing', async () => {
    const locks = await raw.keys('tessera:jwks-lock:*');
    if (locks.length > 0) await raw.del(...locks);
    const app = await startTestApp(
      {
        clusters: [
          { name: 'prod', issuer: prod.issuer, caFile: prod.caFile, audiences: [AUDIENCE] },
        ],
        cache: { redis: redis.url },
        policies,
      },
      { env: { ...process.env, TESSERA_CACHE_KEY: 'another-deployment-secret-0123456789abcdef' } },
    );
    try {
      const answer = await exchange(
        app,
        await prod.sign(projectedClaims(prod.issuer, { audience: AUDIENCE })),
      );
      expect(answer.status).toBe(200);
      expect(await rejected(app, 'mac')).toBeGreaterThanOrEqual(1);
    } finally {
      await app.close();
    }
  });
});
