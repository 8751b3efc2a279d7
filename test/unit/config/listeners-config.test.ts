import { describe, expect, it } from 'vitest';
import { configProblems } from '../../support/config-problems.js';
import { issuerOfListener, loadConfig, parseConfig } from '../../../src/config/index.js';

const minimal = { audience: 'sts.example.com' };

describe('config: listeners, TLS, life cycle', () => {
  it.each([
    ['ok/no-issuer-follows-TESSERA_PORT', { TESSERA_PORT: '9123' }, 'http://127.0.0.1:9123'],
    [
      'ok/no-issuer-wildcard-host-is-localhost',
      { TESSERA_HOST: '0.0.0.0' },
      'http://localhost:8080',
    ],
    [
      'ok/TESSERA_ISSUER-wins',
      { TESSERA_PORT: '9123', TESSERA_ISSUER: 'https://sts.example.com' },
      'https://sts.example.com',
    ],
  ])('%s', (_name, env, issuer) => {
    const config = loadConfig({ env });
    expect(config.issuer ?? issuerOfListener(config.listen)).toBe(issuer);
    expect(config.issuer === undefined).toBe(!('TESSERA_ISSUER' in env));
  });

  it('ok/tls-listener-issuer-is-https-and-defaults', () => {
    const config = parseConfig({
      ...minimal,
      listen: {
        host: '127.0.0.1',
        port: 8443,
        tls: { certFile: '/t/tls.crt', keyFile: '/t/tls.key' },
      },
    });
    expect(config.issuer).toBeUndefined();
    expect(issuerOfListener(config.listen)).toBe('https://127.0.0.1:8443');
    expect(config.lifecycle).toEqual({ drainSeconds: 5 });
    expect(config.workers).toBe(1);
    expect(config.listen.maxConnections).toBe(512);
  });

  it('ok/design-example', () => {
    const config = parseConfig({
      ...minimal,
      issuer: 'https://sts.example.com',
      listen: {
        host: '0.0.0.0',
        port: 8443,
        tls: {
          certFile: '/etc/tessera/tls/tls.crt',
          keyFile: '/etc/tessera/tls/tls.key',
          clientCaFile: '/etc/tessera/tls/clients.pem',
        },
      },
      publicListen: { host: '0.0.0.0', port: 8080 },
      adminListen: { host: '0.0.0.0', port: 9090 },
      lifecycle: { drainSeconds: 10 },
      workers: 'auto',
    });
    expect(config.adminListen).toEqual({ host: '0.0.0.0', port: 9090, maxConnections: 512 });
    expect(config.workers).toBe('auto');
    expect(config.issuer).toBe('https://sts.example.com');
  });

  it.each([
    [
      'fail/same-port-twice',
      { ...minimal, listen: { port: 8080 }, adminListen: { port: 8080 } },
      ['adminListen.port: is already used by listen'],
    ],
    [
      'fail/tls-without-key',
      { ...minimal, listen: { tls: { certFile: '/a' } } },
      ['listen.tls.keyFile: Invalid input: expected string, received undefined'],
    ],
    [
      'fail/unknown-tls-field',
      { ...minimal, listen: { tls: { certFile: '/a', keyFile: '/b', caFile: '/c' } } },
      ['listen.tls.caFile: unknown field'],
    ],
    [
      'fail/zero-workers',
      { ...minimal, workers: 0 },
      ['workers: Too small: expected number to be >=1'],
    ],
    [
      'fail/negative-drain',
      { ...minimal, lifecycle: { drainSeconds: -1 } },
      ['lifecycle.drainSeconds: Too small: expected number to be >=0'],
    ],
    [
      'fail/zero-max-connections',
      { ...minimal, listen: { maxConnections: 0 } },
      ['listen.maxConnections: Too small: expected number to be >=1'],
    ],
  ])('%s', (_name, input, expected) => {
    expect(configProblems(input)).toEqual(expected);
  });
});
