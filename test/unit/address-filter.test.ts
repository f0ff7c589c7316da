/** Which policy-host addresses a fetch may connect to by default (SSRF guard). */
import { describe, expect, it } from 'vitest';
import { isPublicAddress } from '../../src/net/address-filter.js';

describe('isPublicAddress', () => {
  it.each<[string, boolean, string]>([
    ['8.8.8.8', true, 'public IPv4'],
    ['1.1.1.1', true, 'public IPv4'],
    ['2a00:1450:4001:80b::200e', true, 'public IPv6'],
    ['127.0.0.1', false, 'loopback'],
    ['127.45.6.7', false, 'loopback /8'],
    ['10.1.2.3', false, 'RFC 1918'],
    ['172.16.0.1', false, 'RFC 1918'],
    ['172.31.255.254', false, 'RFC 1918'],
    ['172.32.0.1', true, 'just outside 172.16/12'],
    ['192.168.1.1', false, 'RFC 1918'],
    ['100.64.0.1', false, 'CGNAT'],
    ['169.254.169.254', false, 'link-local (cloud metadata)'],
    ['0.0.0.0', false, 'this network'],
    ['224.0.0.1', false, 'multicast'],
    ['255.255.255.255', false, 'broadcast'],
    ['192.0.2.10', false, 'documentation'],
    ['::1', false, 'IPv6 loopback'],
    ['::', false, 'unspecified'],
    ['fd12:3456::1', false, 'ULA'],
    ['fe80::1', false, 'IPv6 link-local'],
    ['ff02::1', false, 'IPv6 multicast'],
    ['2001:db8::1', false, 'documentation'],
    ['::ffff:127.0.0.1', false, 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', false, 'IPv4-mapped loopback, hex form'],
    ['::ffff:10.0.0.1', false, 'IPv4-mapped private'],
    ['::ffff:8.8.8.8', true, 'IPv4-mapped public'],
    ['::127.0.0.1', false, 'IPv4-compatible loopback'],
    ['2002:7f00:1::', false, '6to4 (embeds any IPv4)'],
    ['not-an-ip', false, 'not an address'],
    ['fe80::1%eth0', false, 'link-local with a zone index (never throws)'],
    ['64:ff9b::7f00:1', false, 'NAT64 well-known prefix to loopback'],
    ['64:ff9b::a00:1', false, 'NAT64 well-known prefix to RFC 1918'],
    ['64:ff9b::808:808', true, 'NAT64 well-known prefix to a public IPv4'],
    ['::ffff:0:7f00:1', false, 'IPv4-translated loopback (RFC 2765)'],
    ['::ffff:0:a00:1', false, 'IPv4-translated private'],
    ['fec0::1', false, 'site-local (deprecated)'],
    ['100.127.255.255', false, 'CGNAT, last address'],
    ['100.128.0.0', true, 'just outside CGNAT'],
    ['239.255.255.250', false, 'multicast (SSDP)'],
    ['ff05::2', false, 'IPv6 multicast, site scope'],
    ['fc00::1', false, 'ULA fc00::/8 half'],
  ])('%s -> %s (%s)', (address, want) => {
    expect(isPublicAddress(address)).toBe(want);
  });
});
