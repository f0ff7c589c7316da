/**
 * Which addresses a policy fetch (and `check`'s MX probe) may connect to. A host that resolves to
 * loopback, private or other special-purpose space is refused by default (SSRF: a hostile domain must not
 * make the daemon probe the sender's own network). `fetch.allow_private_addresses` opts out, for labs.
 *
 * Judged from the address's bytes, never from its text (src/net/ip-address.ts), against one table that
 * follows IANA's IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, RFC 8190): each entry keeps
 * the registry's "Globally Reachable" value, and the most specific entry that holds the address decides.
 * On top of the registries:
 * - IPv6 outside 2000::/3, the only space IANA allocates global unicast from (RFC 4291 §2.4, IANA IPv6
 *   Address Space), is refused, whatever a future special-purpose entry there says;
 * - addresses that stand for an IPv4 host (IPv4-mapped, NAT64 well-known prefix) are judged as that host.
 */
import { inPrefix, lastIpv4, parseAddress, parsePrefix, type Prefix } from './ip-address.js';

export interface SpecialRange {
  /** As written in the registry. */
  cidr: string;
  /** The registry's name for it. */
  name: string;
  /** The RFC the registry cites (and section, where it says where). */
  rfc: string;
  /**
   * The registry's "Globally Reachable": true lets a policy host live there. "N/A" (6to4, Teredo,
   * IPv4-mapped) and deprecated blocks are false here: an address there is no host of its own.
   */
  global: boolean;
  /** The last 32 bits are an IPv4 address, judged in place of the IPv6 one. */
  embedsIpv4?: true;
}

/** IANA IPv4 Special-Purpose Address Registry, plus multicast (IANA IPv4 Multicast Address Space). */
export const IPV4_SPECIAL: readonly SpecialRange[] = [
  { cidr: '0.0.0.0/8', name: '"This network"', rfc: 'RFC 791 §3.2', global: false },
  { cidr: '0.0.0.0/32', name: '"This host on this network"', rfc: 'RFC 1122 §3.2.1.3', global: false },
  { cidr: '10.0.0.0/8', name: 'Private-Use', rfc: 'RFC 1918', global: false },
  { cidr: '100.64.0.0/10', name: 'Shared Address Space', rfc: 'RFC 6598', global: false },
  { cidr: '127.0.0.0/8', name: 'Loopback', rfc: 'RFC 1122 §3.2.1.3', global: false },
  { cidr: '169.254.0.0/16', name: 'Link Local', rfc: 'RFC 3927', global: false },
  { cidr: '172.16.0.0/12', name: 'Private-Use', rfc: 'RFC 1918', global: false },
  { cidr: '192.0.0.0/24', name: 'IETF Protocol Assignments', rfc: 'RFC 6890 §2.1', global: false },
  { cidr: '192.0.0.0/29', name: 'IPv4 Service Continuity Prefix', rfc: 'RFC 7335', global: false },
  { cidr: '192.0.0.8/32', name: 'IPv4 dummy address', rfc: 'RFC 7600', global: false },
  { cidr: '192.0.0.9/32', name: 'Port Control Protocol Anycast', rfc: 'RFC 7723', global: true },
  { cidr: '192.0.0.10/32', name: 'Traversal Using Relays around NAT Anycast', rfc: 'RFC 8155', global: true },
  { cidr: '192.0.0.170/32', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 8880, RFC 7050 §2.2', global: false },
  { cidr: '192.0.0.171/32', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 8880, RFC 7050 §2.2', global: false },
  { cidr: '192.0.2.0/24', name: 'Documentation (TEST-NET-1)', rfc: 'RFC 5737', global: false },
  { cidr: '192.31.196.0/24', name: 'AS112-v4', rfc: 'RFC 7535', global: true },
  { cidr: '192.52.193.0/24', name: 'AMT', rfc: 'RFC 7450', global: true },
  { cidr: '192.88.99.0/24', name: 'Deprecated (6to4 Relay Anycast)', rfc: 'RFC 7526', global: false },
  { cidr: '192.168.0.0/16', name: 'Private-Use', rfc: 'RFC 1918', global: false },
  { cidr: '192.175.48.0/24', name: 'Direct Delegation AS112 Service', rfc: 'RFC 7534', global: true },
  { cidr: '198.18.0.0/15', name: 'Benchmarking', rfc: 'RFC 2544', global: false },
  { cidr: '198.51.100.0/24', name: 'Documentation (TEST-NET-2)', rfc: 'RFC 5737', global: false },
  { cidr: '203.0.113.0/24', name: 'Documentation (TEST-NET-3)', rfc: 'RFC 5737', global: false },
  { cidr: '224.0.0.0/4', name: 'Multicast', rfc: 'RFC 5771', global: false },
  { cidr: '240.0.0.0/4', name: 'Reserved', rfc: 'RFC 1112 §4', global: false },
  { cidr: '255.255.255.255/32', name: 'Limited Broadcast', rfc: 'RFC 8190, RFC 919 §7', global: false },
];

/** IANA IPv6 Special-Purpose Address Registry, plus what RFC 4291 reserves outside it. */
export const IPV6_SPECIAL: readonly SpecialRange[] = [
  { cidr: '::/128', name: 'Unspecified Address', rfc: 'RFC 4291 §2.5.2', global: false },
  { cidr: '::1/128', name: 'Loopback Address', rfc: 'RFC 4291 §2.5.3', global: false },
  // Not in the registry: deprecated, and no host of its own (`::0.0.0.2` is not 0.0.0.2 reachable).
  { cidr: '::/96', name: 'IPv4-Compatible IPv6 Address (deprecated)', rfc: 'RFC 4291 §2.5.5.1', global: false },
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped Address', rfc: 'RFC 4291 §2.5.5.2', global: false, embedsIpv4: true },
  // NAT64 (RFC 6052 §3.1): reaches the embedded IPv4 host, so it is as public as that host.
  { cidr: '64:ff9b::/96', name: 'IPv4-IPv6 Translat.', rfc: 'RFC 6052 §2.1', global: true, embedsIpv4: true },
  { cidr: '64:ff9b:1::/48', name: 'IPv4-IPv6 Translat. (local use)', rfc: 'RFC 8215', global: false },
  { cidr: '100::/64', name: 'Discard-Only Address Block', rfc: 'RFC 6666', global: false },
  { cidr: '2001::/23', name: 'IETF Protocol Assignments', rfc: 'RFC 2928', global: false },
  { cidr: '2001::/32', name: 'TEREDO', rfc: 'RFC 4380, RFC 8190', global: false },
  { cidr: '2001:1::1/128', name: 'Port Control Protocol Anycast', rfc: 'RFC 7723', global: true },
  { cidr: '2001:1::2/128', name: 'Traversal Using Relays around NAT Anycast', rfc: 'RFC 8155', global: true },
  { cidr: '2001:2::/48', name: 'Benchmarking', rfc: 'RFC 5180', global: false },
  { cidr: '2001:3::/32', name: 'AMT', rfc: 'RFC 7450', global: true },
  { cidr: '2001:4:112::/48', name: 'AS112-v6', rfc: 'RFC 7535', global: true },
  { cidr: '2001:10::/28', name: 'Deprecated (previously ORCHID)', rfc: 'RFC 4843', global: false },
  { cidr: '2001:20::/28', name: 'ORCHIDv2', rfc: 'RFC 7343', global: true },
  { cidr: '2001:30::/28', name: 'Drone Remote ID Protocol Entity Tags (DETs) Prefix', rfc: 'RFC 9374', global: true },
  { cidr: '2001:db8::/32', name: 'Documentation', rfc: 'RFC 3849', global: false },
  { cidr: '2002::/16', name: '6to4', rfc: 'RFC 3056', global: false },
  { cidr: '2620:4f:8000::/48', name: 'Direct Delegation AS112 Service', rfc: 'RFC 7534', global: true },
  { cidr: '3fff::/20', name: 'Documentation', rfc: 'RFC 9637', global: false },
  { cidr: '5f00::/16', name: 'Segment Routing (SRv6) SIDs', rfc: 'RFC 9602', global: false },
  { cidr: 'fc00::/7', name: 'Unique-Local', rfc: 'RFC 4193, RFC 8190', global: false },
  { cidr: 'fe80::/10', name: 'Link-Local Unicast', rfc: 'RFC 4291 §2.5.6', global: false },
  // Not in the registry: deprecated site-local, still routed privately by some networks.
  { cidr: 'fec0::/10', name: 'Site-Local Unicast (deprecated)', rfc: 'RFC 3879', global: false },
  { cidr: 'ff00::/8', name: 'Multicast', rfc: 'RFC 4291 §2.7', global: false },
];

/** RFC 4291 §2.4 / IANA IPv6 Address Space: global unicast is allocated from 2000::/3 only. */
export const IPV6_GLOBAL_UNICAST = '2000::/3';

interface Compiled extends SpecialRange {
  prefix: Prefix;
}
const compile = (table: readonly SpecialRange[]): Compiled[] =>
  // Longest prefix first: the first match is the most specific entry.
  table.map((r) => ({ ...r, prefix: parsePrefix(r.cidr) })).sort((a, b) => b.prefix.bits - a.prefix.bits);
const V4 = compile(IPV4_SPECIAL);
const V6 = compile(IPV6_SPECIAL);
const GLOBAL_UNICAST = parsePrefix(IPV6_GLOBAL_UNICAST);

export type AddressVerdict = { public: true } | { public: false; why: string };

/** The most specific special-purpose entry holding the address, if any (what the verdict rests on). */
export function specialRangeOf(address: string): SpecialRange | undefined {
  const parsed = parseAddress(address);
  if (parsed === null) return undefined;
  return (parsed.family === 4 ? V4 : V6).find((r) => inPrefix(parsed.bytes, r.prefix));
}

/** Whether a policy host (or an MX, in `check`) may be connected to at `address`, and if not, why. */
export function judgeAddress(address: string): AddressVerdict {
  const parsed = parseAddress(address);
  if (parsed === null) return { public: false, why: 'not an IP address' };
  // RFC 4007 §11: a zone index only ever comes with a scoped (link-local, site-local) address.
  if (parsed.zone !== null) return { public: false, why: 'scoped address with a zone index (RFC 4007 §11)' };
  const range = (parsed.family === 4 ? V4 : V6).find((r) => inPrefix(parsed.bytes, r.prefix));
  if (range?.embedsIpv4) {
    const v4 = lastIpv4(parsed.bytes);
    const inner = judgeAddress(v4);
    return inner.public ? inner : { public: false, why: `${range.cidr} ${range.name} (${range.rfc}) of ${v4}: ${inner.why}` };
  }
  if (range && !range.global) return { public: false, why: `${range.cidr} ${range.name} (${range.rfc})` };
  if (parsed.family === 6 && !inPrefix(parsed.bytes, GLOBAL_UNICAST)) {
    return { public: false, why: `outside ${IPV6_GLOBAL_UNICAST} global unicast (RFC 4291 §2.4)` };
  }
  return { public: true };
}

/** True when the address is globally reachable unicast, the only kind a policy host may have by default. */
export function isPublicAddress(address: string): boolean {
  return judgeAddress(address).public;
}
