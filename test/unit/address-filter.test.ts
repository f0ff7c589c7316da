/**
 * Which addresses a fetch may connect to by default (SSRF guard, src/net/address-filter.ts): every
 * special-purpose range with its RFC, an address inside and one just outside; then the text forms an
 * address may take, all judged by its bytes.
 */
import { describe, expect, it } from 'vitest';
import { IPV4_SPECIAL, IPV6_SPECIAL, isPublicAddress, judgeAddress, specialRangeOf } from '../../src/net/address-filter.js';
import { isIP } from 'node:net';
import { parseIpv6, parsePrefix } from '../../src/net/ip-address.js';

// [range, its RFC, an address inside, public?, the address just outside (before or after it)]
type Row = [cidr: string, rfc: string, inside: string, insidePublic: boolean, outside: string];

// IANA IPv4 Special-Purpose Address Registry (+ multicast, RFC 5771).
const V4: Row[] = [
  ['0.0.0.0/8', 'RFC 791 §3.2', '0.255.255.255', false, '1.0.0.0'],
  ['0.0.0.0/32', 'RFC 1122 §3.2.1.3', '0.0.0.0', false, '0.0.0.1'],
  ['10.0.0.0/8', 'RFC 1918', '10.255.255.255', false, '11.0.0.0'],
  ['100.64.0.0/10', 'RFC 6598', '100.127.255.255', false, '100.128.0.0'],
  ['127.0.0.0/8', 'RFC 1122 §3.2.1.3', '127.255.255.255', false, '128.0.0.0'],
  ['169.254.0.0/16', 'RFC 3927', '169.254.169.254', false, '169.255.0.0'],
  ['172.16.0.0/12', 'RFC 1918', '172.31.255.255', false, '172.32.0.0'],
  ['192.0.0.0/24', 'RFC 6890 §2.1', '192.0.0.255', false, '192.0.1.0'],
  ['192.0.0.0/29', 'RFC 7335', '192.0.0.7', false, '192.0.0.8'],
  ['192.0.0.8/32', 'RFC 7600', '192.0.0.8', false, '192.0.0.7'],
  ['192.0.0.9/32', 'RFC 7723', '192.0.0.9', true, '192.0.0.11'],
  ['192.0.0.10/32', 'RFC 8155', '192.0.0.10', true, '192.0.0.11'],
  ['192.0.0.170/32', 'RFC 8880, RFC 7050 §2.2', '192.0.0.170', false, '192.0.0.169'],
  ['192.0.0.171/32', 'RFC 8880, RFC 7050 §2.2', '192.0.0.171', false, '192.0.0.172'],
  ['192.0.2.0/24', 'RFC 5737', '192.0.2.255', false, '192.0.3.0'],
  ['192.31.196.0/24', 'RFC 7535', '192.31.196.1', true, '192.31.197.0'],
  ['192.52.193.0/24', 'RFC 7450', '192.52.193.1', true, '192.52.194.0'],
  ['192.88.99.0/24', 'RFC 7526', '192.88.99.1', false, '192.88.100.0'],
  ['192.168.0.0/16', 'RFC 1918', '192.168.255.255', false, '192.169.0.0'],
  ['192.175.48.0/24', 'RFC 7534', '192.175.48.1', true, '192.175.49.0'],
  ['198.18.0.0/15', 'RFC 2544', '198.19.255.255', false, '198.20.0.0'],
  ['198.51.100.0/24', 'RFC 5737', '198.51.100.255', false, '198.51.101.0'],
  ['203.0.113.0/24', 'RFC 5737', '203.0.113.255', false, '203.0.114.0'],
  ['224.0.0.0/4', 'RFC 5771', '239.255.255.250', false, '223.255.255.255'],
  ['240.0.0.0/4', 'RFC 1112 §4', '255.255.255.254', false, '239.255.255.255'],
  ['255.255.255.255/32', 'RFC 8190, RFC 919 §7', '255.255.255.255', false, '255.255.255.254'],
];

// IANA IPv6 Special-Purpose Address Registry (+ RFC 4291's IPv4-compatible, site-local, multicast).
const V6: Row[] = [
  ['::/128', 'RFC 4291 §2.5.2', '::', false, '::2'],
  ['::1/128', 'RFC 4291 §2.5.3', '::1', false, '::2'],
  ['::/96', 'RFC 4291 §2.5.5.1', '::0.0.0.2', false, '::1:0:0'],
  ['::ffff:0:0/96', 'RFC 4291 §2.5.5.2', '::ffff:7f00:1', false, '::1:0:0:0'],
  ['64:ff9b::/96', 'RFC 6052 §2.1', '64:ff9b::808:808', true, '64:ff9b::1:0:0'],
  ['64:ff9b:1::/48', 'RFC 8215', '64:ff9b:1:ffff::808:808', false, '64:ff9b:2::'],
  ['100::/64', 'RFC 6666', '100::ffff:ffff:ffff:ffff', false, '100:0:0:1::'],
  ['2001::/23', 'RFC 2928', '2001:1ff::1', false, '2001:200::'],
  ['2001::/32', 'RFC 4380, RFC 8190', '2001:0:ffff::1', false, '2001:1::'],
  ['2001:1::1/128', 'RFC 7723', '2001:1::1', true, '2001:1::'],
  ['2001:1::2/128', 'RFC 8155', '2001:1::2', true, '2001:1::4'],
  ['2001:2::/48', 'RFC 5180', '2001:2:0:ffff::1', false, '2001:2:1::'],
  ['2001:3::/32', 'RFC 7450', '2001:3:ffff::1', true, '2001:4::'],
  ['2001:4:112::/48', 'RFC 7535', '2001:4:112::1', true, '2001:4:113::'],
  ['2001:10::/28', 'RFC 4843', '2001:1f::1', false, '2001:f::'],
  ['2001:20::/28', 'RFC 7343', '2001:2f::1', true, '2001:30::'],
  ['2001:30::/28', 'RFC 9374', '2001:3f::1', true, '2001:40::'],
  ['2001:db8::/32', 'RFC 3849', '2001:db8:ffff::1', false, '2001:db9::'],
  ['2002::/16', 'RFC 3056', '2002:7f00:1::', false, '2003::'],
  ['2620:4f:8000::/48', 'RFC 7534', '2620:4f:8000::1', true, '2620:4f:8001::'],
  ['3fff::/20', 'RFC 9637', '3fff:fff::1', false, '3fff:1000::'],
  ['5f00::/16', 'RFC 9602', '5f00::1', false, '5f01::'],
  ['fc00::/7', 'RFC 4193, RFC 8190', 'fdff::1', false, 'fe00::'],
  ['fe80::/10', 'RFC 4291 §2.5.6', 'febf::1', false, 'fec0::'],
  ['fec0::/10', 'RFC 3879', 'feff::1', false, 'ff00::'],
  ['ff00::/8', 'RFC 4291 §2.7', 'ff02::1', false, 'fe00::'],
];

describe('the special-purpose table follows the registries, range by range', () => {
  it('the code lists exactly these ranges, with these RFCs', () => {
    expect(IPV4_SPECIAL.map((r) => [r.cidr, r.rfc])).toEqual(V4.map(([cidr, rfc]) => [cidr, rfc]));
    expect(IPV6_SPECIAL.map((r) => [r.cidr, r.rfc])).toEqual(V6.map(([cidr, rfc]) => [cidr, rfc]));
  });

  it.each([...V4, ...V6])('%s (%s): %s inside, public %s; %s outside', (cidr, _rfc, inside, insidePublic, outside) => {
    expect(specialRangeOf(inside)?.cidr).toBe(cidr);
    expect(isPublicAddress(inside)).toBe(insidePublic);
    expect(specialRangeOf(outside)?.cidr).not.toBe(cidr);
  });

  it('every range is a well-formed prefix (no host bits set)', () => {
    for (const r of [...IPV4_SPECIAL, ...IPV6_SPECIAL]) expect(() => parsePrefix(r.cidr)).not.toThrow();
  });
});

describe('isPublicAddress: judged by the bytes, whatever the text form', () => {
  it.each<[string, boolean, string]>([
    ['8.8.8.8', true, 'public IPv4'],
    ['1.1.1.1', true, 'public IPv4'],
    ['172.32.0.1', true, 'just outside 172.16/12'],
    ['2a00:1450:4001:80b::200e', true, 'public IPv6'],
    ['2001:4860:4860::8888', true, 'public IPv6, compressed'],
    ['2001:4860:4860:0:0:0:0:8888', true, 'same address, uncompressed'],
    ['2001:4860:4860:0000:0000:0000:0000:8888', true, 'same address, leading zeros'],
    ['2A00:1450:4001:80B::200E', true, 'upper-case hex'],
    // The embedded IPv4 host is what a NAT64 or a dual-stack socket reaches.
    ['64:ff9b::1', false, 'NAT64 to 0.0.0.1 ("this network")'],
    ['64:ff9b::0.0.0.1', false, 'the same, dotted'],
    ['64:ff9b:0:0:0:0:0:1', false, 'the same, uncompressed'],
    ['64:ff9b::7f00:1', false, 'NAT64 to loopback'],
    ['64:ff9b::127.0.0.1', false, 'NAT64 to loopback, dotted'],
    ['64:ff9b::a00:1', false, 'NAT64 to RFC 1918'],
    ['64:ff9b::808:808', true, 'NAT64 to a public IPv4'],
    ['64:ff9b::8.8.8.8', true, 'NAT64 to a public IPv4, dotted'],
    ['64:ff9b:1::808:808', false, 'local-use NAT64 prefix (RFC 8215), whatever it embeds'],
    ['64:ff9b::1:0:0', false, 'the rest of 64:ff9b::/32 is not NAT64 nor global unicast'],
    ['::ffff:127.0.0.1', false, 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', false, 'IPv4-mapped loopback, hex'],
    ['::FFFF:7F00:0001', false, 'IPv4-mapped loopback, upper case with leading zeros'],
    ['0:0:0:0:0:ffff:10.0.0.1', false, 'IPv4-mapped private, uncompressed'],
    ['::ffff:8.8.8.8', true, 'IPv4-mapped public'],
    ['::ffff:0:7f00:1', false, 'IPv4-translated loopback (RFC 2765): outside 2000::/3'],
    ['::ffff:0:808:808', false, 'IPv4-translated public: no longer defined (RFC 6145), outside 2000::/3'],
    ['::0.0.0.2', false, 'IPv4-compatible (deprecated), "this network"'],
    ['::2', false, 'the same bits in hex'],
    ['::127.0.0.1', false, 'IPv4-compatible loopback'],
    ['::8.8.8.8', false, 'IPv4-compatible, even of a public host: deprecated, never routed'],
    ['3fff::1', false, 'documentation (RFC 9637)'],
    ['5f00::1', false, 'SRv6 SIDs (RFC 9602)'],
    ['4000::1', false, 'outside 2000::/3: not allocated'],
    ['1fff:ffff::1', false, 'just below 2000::/3'],
    ['2000::1', true, 'first /3 of global unicast'],
    ['3ffe:ffff::1', true, 'last block of 2000::/3 outside 3fff::/20'],
    ['fe80::1%eth0', false, 'link-local with a zone index'],
    ['2a00:1450::1%eth0', false, 'a zone index on a global address: refused, never a DNS answer'],
    ['fe80::1%', false, 'empty zone index: not an address'],
    ['not-an-ip', false, 'not an address'],
    ['', false, 'empty'],
    ['01.2.3.4', false, 'IPv4 with a leading zero (octal to some parsers)'],
    ['1.2.3', false, 'IPv4 short form'],
    ['1::2::3', false, 'two "::"'],
    [':::1', false, 'triple colon'],
    ['1:2:3:4:5:6:7:8:9', false, 'nine hextets'],
    ['1:2:3:4:5:6:7', false, 'seven hextets without "::"'],
    ['::1.2.3.4:5', false, 'dotted quad not at the end'],
    ['12345::1', false, 'hextet of five digits'],
    ['2001:db8::/32', false, 'a prefix is not an address'],
    ['[::1]', false, 'brackets are URL syntax, not an address'],
  ])('%s -> %s (%s)', (address, want) => {
    expect(isPublicAddress(address)).toBe(want);
  });

  it('the reason names the range and its RFC', () => {
    expect(judgeAddress('64:ff9b::0.0.0.1')).toEqual({
      public: false,
      why: '64:ff9b::/96 IPv4-IPv6 Translat. (RFC 6052 §2.1) of 0.0.0.1: 0.0.0.0/8 "This network" (RFC 791 §3.2)',
    });
    expect(judgeAddress('3fff::1')).toEqual({ public: false, why: '3fff::/20 Documentation (RFC 9637)' });
  });
});

describe('parseIpv6: RFC 4291 §2.2 text forms to 16 bytes', () => {
  const hex = (text: string) => {
    const p = parseIpv6(text);
    return p && { hex: Buffer.from(p.bytes).toString('hex'), zone: p.zone };
  };
  it.each<[string, string, string | null]>([
    ['::', '00000000000000000000000000000000', null],
    ['::1', '00000000000000000000000000000001', null],
    ['1::', '00010000000000000000000000000000', null],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000', null],
    ['::1:2:3:4:5:6:7', '00000001000200030004000500060007', null],
    ['::0.0.0.2', '00000000000000000000000000000002', null],
    ['64:ff9b::0.0.0.1', '0064ff9b000000000000000000000001', null],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304', null],
    ['fe80::1%eth0', 'fe800000000000000000000000000001', 'eth0'],
  ])('%s', (text, want, zone) => {
    expect(hex(text)).toEqual({ hex: want, zone });
  });
});

describe('parseIpv6 agrees with node:net on what is an address, and reads every form to the same bytes', () => {
  // A small deterministic generator (xorshift32): the same inputs on every run.
  let seed = 0x9e3779b9;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const randomBytes = () => {
    const b = new Uint8Array(16);
    for (let i = 0; i < 16; i++) b[i] = next() % 4 === 0 ? 0 : next() & 0xff; // zero runs for "::"
    return b;
  };
  const hextetsOf = (b: Uint8Array) => Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));

  it('full, zero-padded, compressed (URL canonical) and dotted-tail forms give the same 16 bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const b = randomBytes();
      const full = hextetsOf(b).join(':');
      const padded = hextetsOf(b).map((h) => h.padStart(4, '0').toUpperCase()).join(':');
      const canonical = new URL(`http://[${full}]/`).hostname.slice(1, -1);
      const dotted = `${hextetsOf(b).slice(0, 6).join(':')}:${Array.from(b.subarray(12)).join('.')}`;
      for (const text of [full, padded, canonical, dotted]) {
        expect(Buffer.from(parseIpv6(text)!.bytes).toString('hex'), text).toBe(Buffer.from(b).toString('hex'));
      }
    }
  });

  it('accepts exactly what net.isIP calls IPv6, over mangled addresses', () => {
    const alphabet = '0123456789abcdefABCDEF:.:::';
    for (let i = 0; i < 5000; i++) {
      let text = hextetsOf(randomBytes()).join(':');
      if (next() % 2) text = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      // Insert, delete or replace a few characters anywhere.
      for (let k = next() % 4; k > 0; k--) {
        const at = next() % (text.length + 1);
        const ch = alphabet[next() % alphabet.length]!;
        const op = next() % 3;
        text = op === 0 ? text.slice(0, at) + ch + text.slice(at) : op === 1 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ch + text.slice(at + 1);
      }
      expect(parseIpv6(text) !== null, text).toBe(isIP(text) === 6);
    }
  });
});
