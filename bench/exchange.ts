import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey, createSign, createVerify, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { exportJWK } from 'jose';
import { stringify } from 'yaml';
import { freePort, load, startProcess, stopProcess, timePerCall, waitForHttp, type LoadFigures } from './support.js';

/**
 * Exchange throughput of one broker process under load with distinct RS256 subject tokens
 * (as real clusters sign them), beside the platform ceiling measured in the same run:
 * a trivial node:http handler answering the same requests, plus raw node:crypto RS256 verify
 * and ES256 sign on one core: ceiling = 1 / (t_http + t_verify + t_sign).
 */
const ROOT = resolve(import.meta.dirname, '..');
const TOKENS = Number(process.env.BENCH_TOKENS ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const CLUSTER_ISSUER = 'https://bench-cluster.tessera.local';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(createPublicKey(privateKey))), kid: 'bench', alg: 'RS256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const tokens = Array.from({ length: TOKENS }, (_, i) => {
    const claims = {
      aud: ['tessera'],
      exp: now + 3600,
      iat: now,
      nbf: now,
      iss: CLUSTER_ISSUER,
      sub: `system:serviceaccount:bench-${i % 50}:sa-${i}`,
      'kubernetes.io': { namespace: `bench-${i % 50}`, serviceaccount: { name: `sa-${i}`, uid: randomUUID() }, pod: { name: `pod-${i}`, uid: randomUUID() } },
    };
    const input = `${b64({ alg: 'RS256', kid: 'bench', typ: 'JWT' })}.${b64(claims)}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  });
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'policies', 'bench-role.yaml'),
    stringify({
      apiVersion: 'tessera.dev/v1',
      kind: 'Role',
      metadata: { name: 'bench' },
      trustPolicy: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Federated: 'bench' }, Action: 'sts:TokenExchange', Condition: { StringLike: { 'kubernetes.io/namespace': 'bench-*' } } }],
      },
      issue: { audiences: ['bench-audience'], algorithm: 'ES256', maxLifetime: '1h', defaultLifetime: '15m' },
    }),
  );
  const bodies = tokens.map((token) =>
    new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      resource: 'bench',
    }).toString(),
  );
  return { dir, jwk, tokens, bodies, privateKey };
}

async function runBroker(dir: string, jwk: object, bodies: string[], redisUrl?: string): Promise<LoadFigures> {
  const port = await freePort();
  const config = {
    issuer: `http://127.0.0.1:${port}`,
    listen: { host: '127.0.0.1', port },
    audience: 'tessera',
    clusters: [{ name: 'bench', issuer: CLUSTER_ISSUER, jwks: { keys: [jwk] } }],
    policies: join(dir, 'policies'),
    keys: { provider: 'local', dir: join(dir, redisUrl ? 'keys-redis' : 'keys') },
    ...(redisUrl && { cache: { redis: redisUrl } }),
    // One load generator on one address: the throughput of exchanges, not of the rate limiter.
    rateLimit: { enabled: false },
    logging: { level: 'info' },
  };
  const file = join(dir, `config-${port}.yaml`);
  writeFileSync(file, stringify(config));
  const broker = startProcess([join(ROOT, 'bin/tessera.js'), 'serve', '--config', file], { TESSERA_CACHE_KEY: 'bench-cache-secret-0123456789abcdef0123' });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, 30_000, broker);
    const check = await fetch(`http://127.0.0.1:${port}/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: bodies[0] });
    if (check.status !== 200) throw new Error(`broker refused the bench exchange: ${check.status} ${await check.text()}`);
    return await load(`http://127.0.0.1:${port}/v1/token`, bodies, { seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS });
  } finally {
    await stopProcess(broker);
  }
}

async function runBaseline(bodies: string[]): Promise<LoadFigures> {
  const port = await freePort();
  const server = startProcess([join(ROOT, 'bin/run-ts.js'), join(ROOT, 'bench/baseline-server.ts'), String(port)]);
  try {
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 300));
    await waitForHttp(`http://127.0.0.1:${port}/`, 10_000).catch(() => undefined);
    return await load(`http://127.0.0.1:${port}/`, bodies, { seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS });
  } finally {
    await stopProcess(server);
  }
}

async function startRedis(): Promise<{ url: string; stop: () => void } | undefined> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await new Promise((resolvePromise) => setTimeout(resolvePromise, 500));
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

export async function benchExchange(): Promise<void> {
  const { dir, jwk, tokens, bodies, privateKey } = await setup();
  try {
    const broker = await runBroker(dir, jwk, bodies);
    const redis = await startRedis();
    const brokerRedis = redis ? await runBroker(dir, jwk, bodies, redis.url).finally(() => redis.stop()) : undefined;
    const baseline = await runBaseline(bodies);

    const publicKey = createPublicKey(privateKey);
    const esKey = createPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    let index = 0;
    const tVerify = timePerCall(() => {
      const token = tokens[index++ % tokens.length] as string;
      const dot = token.lastIndexOf('.');
      createVerify('sha256').update(token.slice(0, dot)).verify(publicKey, Buffer.from(token.slice(dot + 1), 'base64url'));
    });
    const claims = b64({ iss: 'x', sub: 'system:serviceaccount:a:b', aud: 'bench-audience', exp: 1, iat: 1, jti: 'x'.repeat(22) });
    const tSign = timePerCall(() => {
      createSign('sha256').update(claims).sign({ key: esKey, dsaEncoding: 'ieee-p1363' });
    });
    const tHttp = 1 / baseline.rps;
    const ceiling = 1 / (tHttp + tVerify + tSign);

    const row = (name: string, figures: LoadFigures) =>
      `  ${name.padEnd(34)} ${figures.rps.toFixed(0).padStart(8)} req/s   p50 ${String(figures.p50).padStart(4)} ms   p99 ${String(figures.p99).padStart(4)} ms   non-2xx ${figures.non2xx}`;
    console.log(`\nToken exchange (${TOKENS} distinct RS256 subject tokens, ${CONNECTIONS} connections, median of ${ROUNDS} × ${SECONDS}s)`);
    console.log(row('broker, in-memory JWKS cache', broker));
    if (brokerRedis) console.log(row('broker, Redis JWKS cache', brokerRedis));
    else console.log('  broker, Redis JWKS cache           (redis-server not installed: not measured)');
    console.log(row('node:http baseline (same requests)', baseline));
    console.log(`  raw node:crypto RS256 verify       ${(tVerify * 1e6).toFixed(1).padStart(8)} µs/op (one core)`);
    console.log(`  raw node:crypto ES256 sign         ${(tSign * 1e6).toFixed(1).padStart(8)} µs/op (one core)`);
    console.log(`  platform ceiling 1/(t_http+t_verify+t_sign) ${ceiling.toFixed(0)} req/s`);
    console.log(`  broker / ceiling                   ${(broker.rps / ceiling).toFixed(2)}`);
    if (brokerRedis) console.log(`  broker (Redis) / ceiling           ${(brokerRedis.rps / ceiling).toFixed(2)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
