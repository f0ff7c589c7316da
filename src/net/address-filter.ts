/**
 * Which addresses a policy fetch may connect to. A policy host that resolves to loopback, private or
 * other special-purpose space is refused by default (SSRF: a hostile domain must not make the daemon
 * probe the sender's own network). `fetch.allow_private_addresses` opts out, for labs and tests.
 */
import { BlockList, isIP } from 'node:net';

// IANA IPv4/IPv6 Special-Purpose Address Registries (RFC 6890 and successors): not globally reachable.
const V4_SPECIAL: Array<[string, number]> = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // RFC 6598 CGNAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
];
const V6_SPECIAL: Array<[string, number]> = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID, ...)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: embeds an arbitrary IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated by RFC 3879, still routed privately)
  ['ff00::', 8], // multicast
];

const blocked = new BlockList();
for (const [net, bits] of V4_SPECIAL) blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of V6_SPECIAL) blocked.addSubnet(net, bits, 'ipv6');

/** True when the address is globally reachable unicast, the only kind a policy host may have by default. */
export function isPublicAddress(address: string): boolean {
  // A zone index ("fe80::1%eth0") only ever comes with a link-local or other scoped address.
  if (address.includes('%')) return false;
  const family = isIP(address);
  if (family === 4) return !blocked.check(address, 'ipv4');
  if (family !== 6) return false;
  const embedded = embeddedIpv4(address);
  if (embedded !== null) return isPublicAddress(embedded);
  return !blocked.check(address, 'ipv6');
}

/**
 * IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96, RFC 2765), NAT64 well-known prefix
 * (64:ff9b::/96, RFC 6052) and the deprecated IPv4-compatible (::/96) forms reach the embedded IPv4 host,
 * so they are judged as that host. The URL parser gives the canonical text form to read it from.
 */
function embeddedIpv4(v6: string): string | null {
  let canonical: string;
  try {
    canonical = new URL(`http://[${v6}]/`).hostname.slice(1, -1);
  } catch {
    return '0.0.0.0'; // not an address the URL parser knows: judged as "this network", never public
  }
  const m = /^(?:::|::ffff:|::ffff:0:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!m) return null;
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}
