import { BlockList, isIP } from 'node:net';
import { parseCidr } from '../config/index.js';

/** The peers whose `X-Forwarded-For` is believed (`trustedProxies` of the config). */
export interface TrustedProxies {
  has(address: string): boolean;
  /** A socket's peer address normalised (else as it is), and whether it is a trusted proxy. */
  peer(address: string): { address: string; trusted: boolean };
}

/** Socket peers remembered by {@link TrustedProxies.peer}; the table starts over when full. */
const MAX_REMEMBERED_PEERS = 4096;

/**
 * Compiles `trustedProxies` (CIDRs or single addresses, IPv4 and IPv6). An IPv4 range also covers
 * the IPv4-mapped IPv6 form (`::ffff:10.0.0.1`) a dual-stack socket reports.
 *
 * @example const proxies = trustedProxies(['10.0.0.0/8', 'fd00::/8']);
 */
export function trustedProxies(cidrs: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const parsed = parseCidr(cidr);
    if (!parsed) throw new Error(`not a CIDR: ${cidr}`);
    list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  const has = (address: string): boolean => {
    const ip = normaliseIp(address);
    if (!ip) return false;
    return list.check(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6');
  };
  // A keep-alive connection asks about the same peer on every request: its normalisation and
  // check (about 1.0 µs without proxies, 1.6 µs with, by microbenchmark) are done once per peer.
  const peers = new Map<string, { address: string; trusted: boolean }>();
  return {
    has,
    peer(address) {
      let known = peers.get(address);
      if (!known) {
        const normalised = normaliseIp(address) ?? address;
        known = { address: normalised, trusted: has(normalised) };
        if (peers.size >= MAX_REMEMBERED_PEERS) peers.clear();
        peers.set(address, known);
      }
      return known;
    },
  };
}

/**
 * The address a request came from: the socket's peer, or — when the peer is a trusted proxy — the
 * right-most address in `X-Forwarded-For` that is not itself a trusted proxy. Entries left of that
 * one are whatever the client chose to send, so they are never believed. An entry that is not an
 * address stops the walk at the trusted hop that forwarded it.
 *
 * @example clientAddress('10.0.0.5', '203.0.113.7, 10.0.0.9', trustedProxies(['10.0.0.0/8'])) // '203.0.113.7'
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | null | undefined,
  trusted: TrustedProxies,
): string | undefined {
  if (peer === undefined) return undefined;
  const known = trusted.peer(peer);
  let current = known.address;
  if (!known.trusted || !forwardedFor) return current;
  const hops = forwardedFor.split(',');
  for (let index = hops.length - 1; index >= 0; index -= 1) {
    const hop = normaliseIp(hops[index] as string);
    if (!hop) return current;
    current = hop;
    if (!trusted.has(hop)) return hop;
  }
  return current;
}

/** An IP without port, brackets or zone, IPv4-mapped IPv6 as IPv4; undefined when not an address. */
function normaliseIp(value: string): string | undefined {
  let text = value.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) text = bracketed[1] as string;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(text)) text = text.slice(0, text.lastIndexOf(':'));
  text = text.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(text);
  if (mapped) text = mapped[1] as string;
  return isIP(text) === 0 ? undefined : text.toLowerCase();
}
