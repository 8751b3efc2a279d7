import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/config/index.js';
import { clientAddress, trustedProxies } from '../../../src/sts/index.js';

const proxies = trustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);

describe('clientAddress', () => {
  const cases: Array<[string, string | undefined, string | undefined, string | undefined]> = [
    ['ok/untrusted-peer-header-ignored', '203.0.113.5', '198.51.100.1', '203.0.113.5'],
    ['ok/no-header-is-the-peer', '10.0.0.1', undefined, '10.0.0.1'],
    [
      'ok/trusted-peer-right-most-untrusted',
      '10.0.0.1',
      '198.51.100.1, 203.0.113.9',
      '203.0.113.9',
    ],
    [
      'ok/chain-of-trusted-proxies-skipped',
      '10.0.0.1',
      '198.51.100.1, 203.0.113.9, 10.2.3.4, 192.168.1.7',
      '203.0.113.9',
    ],
    ['ok/all-trusted-is-the-left-most', '10.0.0.1', '10.9.9.9, 10.8.8.8', '10.9.9.9'],
    ['ok/ipv6-peer-and-client', 'fd00::1', '2001:db8::7', '2001:db8::7'],
    ['ok/ipv4-mapped-peer', '::ffff:10.0.0.1', '203.0.113.9', '203.0.113.9'],
    [
      'ok/ports-and-brackets-dropped',
      '10.0.0.1',
      '[2001:db8::7]:443, 203.0.113.9:5678',
      '203.0.113.9',
    ],
    ['ok/case-of-ipv6-normalised', 'fd00::1', '2001:DB8::7', '2001:db8::7'],
    ['fail/garbage-hop-stops-at-trusted-proxy', '10.0.0.1', '203.0.113.9, not-an-ip', '10.0.0.1'],
    ['fail/garbage-beyond-trusted-chain', '10.0.0.1', 'evil, 10.2.3.4', '10.2.3.4'],
    ['ok/no-peer', undefined, '203.0.113.9', undefined],
    ['ok/not-trusted-192-168-1-8', '192.168.1.8', '203.0.113.9', '192.168.1.8'],
  ];
  for (const [name, peer, header, expected] of cases) {
    it(name, () => expect(clientAddress(peer, header, proxies)).toBe(expected));
  }
});

describe('parseCidr', () => {
  it('accepts IPv4, IPv6 and bare addresses; refuses the rest', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    expect(parseCidr('192.168.1.7')).toEqual({
      address: '192.168.1.7',
      prefix: 32,
      family: 'ipv4',
    });
    for (const bad of [
      '10.0.0.0/33',
      'fd00::/129',
      'example.com/8',
      '10.0.0.0/8/1',
      '10.0.0.0/',
      '10.0.0.0/-1',
    ])
      expect(parseCidr(bad)).toBeUndefined();
  });
});
