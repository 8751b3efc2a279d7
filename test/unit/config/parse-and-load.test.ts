import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configProblems } from '../../support/config-problems.js';
import {
  issuerOfListener,
  loadConfig,
  parseConfig,
  parseDuration,
} from '../../../src/config/index.js';

const minimal = { issuer: 'https://sts.example.com', audience: 'sts.example.com' };

describe('config: parse and load', () => {
  it('ok/defaults-filled-in', () => {
    const config = parseConfig(minimal);
    expect(config.listen).toEqual({
      host: '127.0.0.1',
      port: 8080,
      maxConnections: 512,
      headersTimeout: 10,
      requestTimeout: 15,
    });
    expect(config.keys.provider).toBe('local');
    expect(config.keys.algorithms).toEqual(['ES256', 'RS256']);
    expect(config.cache).toEqual({ keyEnv: 'TESSERA_CACHE_KEY', maxStale: 86400 });
    expect(config.policies).toBe('./policies');
  });

  it('ok/full-design-example', () => {
    const config = parseConfig({
      ...minimal,
      listen: { host: '0.0.0.0', port: 8080 },
      clusters: [
        {
          name: 'prod',
          issuer: 'https://oidc.prod.example.com',
          verify: 'jwks+tokenreview',
          audiences: ['sts.example.com'],
          jwksUri: 'https://oidc.prod.example.com/openid/v1/jwks',
          kubeconfig: 'in-cluster',
          caFile: '/etc/ca.pem',
        },
      ],
      keys: {
        provider: 'pkcs11',
        module: '/usr/lib/softhsm/libsofthsm2.so',
        tokenLabel: 'tessera',
        pinEnv: 'TESSERA_PKCS11_PIN',
        rotation: { every: '24h', overlap: '2h' },
      },
      x509: { trustDomain: 'example.com', caTtl: '8760h' },
      cache: { redis: 'redis://127.0.0.1:6379' },
    });
    expect(config.keys.rotation).toEqual({ every: 86400, overlap: 7200 });
    expect(config.x509.caTtl).toBe(8760 * 3600);
    expect(config.clusters[0]?.allowInsecure).toBe(false);
  });

  it('ok/max-token-lifetime-in-seconds-absent-by-default', () => {
    const config = parseConfig({
      ...minimal,
      clusters: [
        { name: 'a', issuer: 'https://a.example.com', maxTokenLifetime: '48h' },
        { name: 'b', issuer: 'https://b.example.com' },
      ],
    });
    expect(config.clusters.map((cluster) => cluster.maxTokenLifetime)).toEqual([
      172_800,
      undefined,
    ]);
  });

  const bad: Array<[string, unknown, string[]]> = [
    [
      'fail/http-cluster-issuer',
      { ...minimal, clusters: [{ name: 'prod', issuer: 'http://oidc.example.com' }] },
      ['clusters[0].issuer: must be an https URL'],
    ],
    [
      'fail/issuer-with-query',
      { ...minimal, clusters: [{ name: 'prod', issuer: 'https://oidc.example.com/?x=1' }] },
      ['clusters[0].issuer: must not contain a query or fragment'],
    ],
    [
      'fail/issuer-with-userinfo',
      { ...minimal, clusters: [{ name: 'prod', issuer: 'https://u:p@oidc.example.com' }] },
      ['clusters[0].issuer: must not contain userinfo'],
    ],
    [
      'fail/issuer-dot-segments',
      { ...minimal, clusters: [{ name: 'prod', issuer: 'https://oidc.example.com/a/../b' }] },
      ['clusters[0].issuer: must not contain dot segments'],
    ],
    ['fail/unknown-top-level-field', { ...minimal, issuerr: 'x' }, ['issuerr: unknown field']],
    [
      'fail/unknown-cluster-field',
      { ...minimal, clusters: [{ name: 'prod', issuer: 'https://a.example.com', verfy: 'jwks' }] },
      ['clusters[0].verfy: unknown field'],
    ],
    [
      'fail/bad-verify-mode',
      {
        ...minimal,
        clusters: [{ name: 'prod', issuer: 'https://a.example.com', verify: 'magic' }],
      },
      [
        'clusters[0].verify: Invalid option: expected one of "jwks"|"tokenreview"|"jwks+tokenreview"',
      ],
    ],
    [
      'fail/tokenreview-without-kubeconfig',
      {
        ...minimal,
        clusters: [{ name: 'prod', issuer: 'https://a.example.com', verify: 'tokenreview' }],
      },
      ['clusters[0].kubeconfig: is required when verify is tokenreview'],
    ],
    [
      'fail/max-token-lifetime-below-1m',
      {
        ...minimal,
        clusters: [{ name: 'prod', issuer: 'https://a.example.com', maxTokenLifetime: '30s' }],
      },
      ['clusters[0].maxTokenLifetime: must be at least 1m'],
    ],
    [
      'fail/max-token-lifetime-not-a-duration',
      {
        ...minimal,
        clusters: [{ name: 'prod', issuer: 'https://a.example.com', maxTokenLifetime: 'forever' }],
      },
      ['clusters[0].maxTokenLifetime: must be a duration such as 90s, 15m, 1h or 24h'],
    ],
    [
      'fail/duplicate-cluster-issuer',
      {
        ...minimal,
        clusters: [
          { name: 'a', issuer: 'https://a.example.com' },
          { name: 'b', issuer: 'https://a.example.com' },
        ],
      },
      ['clusters[1].issuer: duplicates clusters[0].issuer'],
    ],
    [
      'fail/bad-duration',
      { ...minimal, keys: { rotation: { every: 'daily' } } },
      ['keys.rotation.every: must be a duration such as 90s, 15m, 1h or 24h'],
    ],
    [
      'fail/fractional-duration',
      { ...minimal, keys: { rotation: { every: '90.5s' } } },
      ['keys.rotation.every: must be a whole number of seconds (such as 90s, 15m or 1h30m)'],
    ],
    [
      'fail/pkcs11-without-module-or-pin',
      { ...minimal, keys: { provider: 'pkcs11', tokenLabel: 't' } },
      [
        'keys.module: is required for provider pkcs11',
        'keys.pinEnv: pinEnv or pinFile is required for provider pkcs11',
      ],
    ],
    [
      'fail/http-broker-issuer-not-loopback',
      { ...minimal, issuer: 'http://sts.example.com' },
      ['issuer: must be an https URL'],
    ],
    [
      'fail/dev-cluster-bad-name-and-issuer',
      { ...minimal, devCluster: { name: 'Bad Name!', issuer: 'not a url' } },
      [
        'devCluster.name: must be a DNS label (lowercase letters, digits, -)',
        'devCluster.issuer: must be an https URL',
      ],
    ],
    [
      'fail/cluster-shadows-dev-cluster',
      {
        ...minimal,
        devCluster: {},
        clusters: [{ name: 'dev', issuer: 'https://dev-cluster.tessera.local' }],
      },
      [
        'clusters[0].name: duplicates devCluster.name',
        'clusters[0].issuer: duplicates devCluster.issuer',
      ],
    ],
    ['fail/zero-ca-ttl', { ...minimal, x509: { caTtl: 0 } }, ['x509.caTtl: must be at least 1h']],
    [
      'fail/rotation-every-second',
      { ...minimal, keys: { rotation: { every: '1s' } } },
      ['keys.rotation.every: must be at least 1m'],
    ],
    [
      'fail/missing-audience',
      { issuer: 'https://sts.example.com' },
      ['audience: Invalid input: expected string, received undefined'],
    ],
    [
      'fail/cache-not-a-redis-url',
      { ...minimal, cache: { redis: 'http://127.0.0.1:6379' } },
      ['cache.redis: must be a redis:// or rediss:// URL'],
    ],
    [
      'fail/cache-two-targets',
      { ...minimal, cache: { redis: 'redis://a:6379', cluster: ['a:7000'] } },
      ['cache.cluster: only one of redis, sentinel and cluster may be set (also redis)'],
    ],
    [
      'fail/cache-sentinel-node-objects',
      { ...minimal, cache: { sentinel: { sentinels: [{ host: 'a', port: 26379 }], name: 'm' } } },
      ['cache.sentinel.sentinels[0]: Invalid input: expected string, received object'],
    ],
    [
      'fail/cache-cluster-node-without-port',
      { ...minimal, cache: { cluster: ['10.0.0.1'] } },
      ['cache.cluster[0]: must be "host:port"'],
    ],
    [
      'fail/cache-ca-file-without-rediss',
      { ...minimal, cache: { redis: 'redis://a:6379', caFile: '/ca.pem' } },
      ['cache.caFile: needs a rediss:// URL in cache.redis'],
    ],
    [
      'fail/cache-key-env-not-a-name',
      { ...minimal, cache: { keyEnv: 'MY KEY' } },
      ['cache.keyEnv: must be an environment variable name'],
    ],
    [
      'fail/trusted-proxy-not-a-cidr',
      { ...minimal, trustedProxies: ['10.0.0.0/33'] },
      ['trustedProxies[0]: must be a CIDR such as 10.0.0.0/8 or fd00::/8'],
    ],
    [
      'fail/old-rate-limit-field',
      { ...minimal, rateLimit: { perClient: 3 } },
      ['rateLimit.perClient: unknown field'],
    ],
  ];
  it.each(bad)('%s', (_name, input, expected) => {
    expect(configProblems(input)).toEqual(expected);
  });

  it('ok/cache-sentinel-and-cluster-as-host-port-strings', () => {
    const sentinel = parseConfig({
      ...minimal,
      cache: { sentinel: { sentinels: ['10.0.0.1:26379', '[fd00::2]:26379'], name: 'mymaster' } },
    });
    expect(sentinel.cache.sentinel).toEqual({
      sentinels: ['10.0.0.1:26379', '[fd00::2]:26379'],
      name: 'mymaster',
    });
    const cluster = parseConfig({
      ...minimal,
      cache: {
        cluster: ['redis-0:7000', 'redis-1:7000'],
        keyEnv: 'SHARED',
        passwordEnv: 'REDIS_PW',
      },
    });
    expect(cluster.cache).toMatchObject({
      cluster: ['redis-0:7000', 'redis-1:7000'],
      keyEnv: 'SHARED',
      passwordEnv: 'REDIS_PW',
    });
    expect(
      parseConfig({
        ...minimal,
        cache: { redis: 'rediss://redis.example:6380/0', caFile: '/etc/redis-ca.pem' },
      }).cache.caFile,
    ).toBe('/etc/redis-ca.pem');
  });

  it('ok/http-issuer-allowed-with-allowInsecure', () => {
    expect(
      parseConfig({
        ...minimal,
        clusters: [{ name: 'kind', issuer: 'http://127.0.0.1:6443', allowInsecure: true }],
      }).clusters[0]?.issuer,
    ).toBe('http://127.0.0.1:6443');
  });

  it('ok/file-yaml-relative-paths-and-env-overrides', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
    const file = join(dir, 'tessera.yaml');
    writeFileSync(
      file,
      'issuer: https://sts.example.com\naudience: sts\npolicies: ./pol\nclusters:\n  - name: prod\n    issuer: https://oidc.example.com\n    caFile: ca.pem\n',
    );
    const config = loadConfig({ file, env: { TESSERA_PORT: '9999' }, cwd: '/' });
    expect(config.policies).toBe(join(dir, 'pol'));
    expect(config.clusters[0]?.caFile).toBe(join(dir, 'ca.pem'));
    expect(config.listen.port).toBe(9999);
  });

  it('ok/audit-file-relative-to-the-config-file-stdout-kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
    const file = join(dir, 'tessera.yaml');
    writeFileSync(
      file,
      'issuer: https://sts.example.com\naudience: sts\naudit: { file: logs/audit.log }\n',
    );
    expect(loadConfig({ file, env: {}, cwd: '/' }).audit).toEqual({
      file: join(dir, 'logs/audit.log'),
    });
    writeFileSync(
      file,
      'issuer: https://sts.example.com\naudience: sts\naudit: { file: stdout }\n',
    );
    expect(loadConfig({ file, env: {}, cwd: '/' }).audit).toEqual({ file: 'stdout' });
    expect(parseConfig(minimal).audit).toEqual({});
    expect(configProblems({ ...minimal, audit: { file: '' } })).toEqual([
      'audit.file: Too small: expected string to have >=1 characters',
    ]);
  });

  it.each([
    [
      'ok/embedded-defaults-issuer-follows-TESSERA_PORT',
      { TESSERA_PORT: '9091' },
      'http://127.0.0.1:9091',
      9091,
    ],
    [
      'ok/embedded-defaults-TESSERA_ISSUER-wins',
      { TESSERA_PORT: '9091', TESSERA_ISSUER: 'https://sts.example.com' },
      'https://sts.example.com',
      9091,
    ],
    ['ok/embedded-defaults-unchanged', {}, 'http://127.0.0.1:8080', 8080],
  ])('%s', (_name, env, issuer, port) => {
    const config = loadConfig({ env, cwd: '/' });
    // Without an issuer in the config, the broker's is the main listener's URL (src/app.ts).
    expect({
      issuer: config.issuer ?? issuerOfListener(config.listen),
      port: config.listen.port,
    }).toEqual({ issuer, port });
  });

  it('fail/yaml-error-names-the-position-but-never-echoes-the-source', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
    const file = join(dir, 'tessera.yaml');
    writeFileSync(
      file,
      'issuer: https://a.example.com\ncache: { redis: [redis://u:s3cret@h:6379\naudience: x\n',
    );
    let message = '';
    try {
      loadConfig({ file, env: {} });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `),
    );
    expect(message).not.toContain('s3cret');
  });

  it('fail/yaml-duplicate-key-is-refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
    const file = join(dir, 'tessera.yaml');
    writeFileSync(
      file,
      'issuer: https://a.example.com\nissuer: https://b.example.com\naudience: x\n',
    );
    expect(() => loadConfig({ file, env: {} })).toThrow(/Map keys must be unique/);
  });

  it('ok/embedded-defaults-have-the-dev-cluster', () => {
    const config = loadConfig({ env: {} });
    // No issuer in the defaults: it follows the listener (http://127.0.0.1:8080 unless TESSERA_PORT says otherwise).
    expect(config.issuer).toBeUndefined();
    expect(issuerOfListener(config.listen)).toBe('http://127.0.0.1:8080');
    expect(config.devCluster?.name).toBe('dev');
    expect(config.cache.redis).toBeUndefined();
  });

  it.each([
    ['90s', 90],
    ['15m', 900],
    ['1h30m', 5400],
    ['24h', 86400],
    ['7d', 604800],
    ['3600', 3600],
    ['1 hour', undefined],
    ['', undefined],
    ['h', undefined],
    ['2000ms', 2],
    ['90.5s', undefined],
    ['1.5h', undefined],
    ['1500ms', undefined],
    ['90.5', undefined],
    [90.5, undefined],
  ] as const)('duration %s', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });
});
