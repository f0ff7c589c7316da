import { describe, expect, it } from 'vitest';
import { type DomainKey, KEY_SKIP_REASONS, type KeySkipReason, keySkipReason, normalizeDomainKey } from '../../src/sts/domain.js';

const domain = (d: string): DomainKey => ({ kind: 'domain', domain: d });
const skip = (why: Extract<DomainKey, { kind: 'skip' }>['why']): DomainKey => ({ kind: 'skip', why });

const label63 = 'a'.repeat(63);
// Exactly 253 octets: four 61-octet labels, four dots, and a 5-octet last label.
const name253 = `${'a'.repeat(61)}.${'b'.repeat(61)}.${'c'.repeat(61)}.${'d'.repeat(61)}.abcde`;

describe('normalizeDomainKey: lookup key -> domain to resolve', () => {
  // [key, result, rule]
  const resolved: Array<[string, DomainKey, string]> = [
    ['example.com', domain('example.com'), 'a plain domain'],
    ['Example.COM', domain('example.com'), 'case-insensitive: lower-cased'],
    ['example.com.', domain('example.com'), 'one trailing dot ignored'],
    ['mail.sub.example.co.uk', domain('mail.sub.example.co.uk'), 'any depth'],
    ['xn--bcher-kva.example', domain('xn--bcher-kva.example'), 'A-labels kept'],
    ['bücher.example', domain('xn--bcher-kva.example'), 'U-label -> A-label'],
    ['BÜCHER.example', domain('xn--bcher-kva.example'), 'U-label, upper case -> A-label'],
    ['例え.テスト', domain('xn--r8jz45g.xn--zckzah'), 'all U-labels -> A-labels'],
    ['bücher。example', domain('xn--bcher-kva.example'), 'ideographic full stop is a dot (UTS #46)'],
    ['example.com:25', domain('example.com'), 'domain:port still has an MX lookup'],
    ['example.com:smtp', domain('example.com'), 'domain:service still has an MX lookup'],
    ['example.com.:25', domain('example.com'), 'trailing dot before the port'],
    ['mx.0x10', domain('mx.0x10'), 'ASCII keys skip WHATWG host parsing, which reads 0x10 as IPv4'],
    ['123.example', domain('123.example'), 'all-digit labels are fine below the TLD'],
    [`${label63}.example`, domain(`${label63}.example`), '63-octet label'],
    [name253, domain(name253), '253 octets'],
    [`${name253}.`, domain(name253), '253 octets plus the trailing dot'],
    ['xn--zz.example', domain('xn--zz.example'), 'ASCII keys are LDH-checked, not punycode-decoded'],
  ];
  it.each(resolved)('%j -> domain (%s)', (key, want) => {
    expect(normalizeDomainKey(key)).toEqual(want);
  });

  const skipped: Array<[string, DomainKey, string]> = [
    ['.example.com', skip('parent-probe'), 'Postfix parent-domain probe: policies cover the exact domain only'],
    ['.com', skip('parent-probe'), 'parent probe of a TLD'],
    ['[mx.example.com]', skip('next-hop'), 'explicit next hop: no MX lookup'],
    ['[mx.example.com]:587', skip('next-hop'), 'explicit next hop with port'],
    ['[relay]', skip('next-hop'), 'explicit next hop, single label'],
    ['[192.0.2.1]', skip('address-literal'), 'IPv4 literal'],
    ['[192.0.2.1]:25', skip('address-literal'), 'IPv4 literal with port'],
    ['[2001:db8::1]', skip('address-literal'), 'IPv6 literal'],
    ['[2001:db8::1]:25', skip('address-literal'), 'IPv6 literal with port'],
    ['[IPv6:2001:db8::1]', skip('address-literal'), 'RFC 5321 IPv6 address literal'],
    ['192.0.2.1', skip('address-literal'), 'bare IPv4'],
    ['192.0.2.1:25', skip('address-literal'), 'bare IPv4 with port'],
    ['2001:db8::1', skip('address-literal'), 'bare IPv6'],
    ['::1', skip('address-literal'), 'bare IPv6 loopback'],
    ['localhost', skip('single-label'), 'single label'],
    ['LOCALHOST.', skip('single-label'), 'single label, case and trailing dot'],
    ['com', skip('single-label'), 'bare TLD'],
    ['localhost:25', skip('single-label'), 'single label with port'],
    // Keys Postfix really sends for a relayhost or transport next hop (issue 13): never an error.
    ['[smtp_relay.corp]', skip('next-hop'), 'bracketed relayhost with an underscore: no lookup, so no LDH rule'],
    ['[relay_1.example.com]:587', skip('next-hop'), 'bracketed relayhost with an underscore and a port'],
    ['[a..b]', skip('next-hop'), 'whatever is inside the brackets, Postfix connects to it as given'],
    ['192.0.2.1.', skip('address-literal'), 'an IPv4 address written as an absolute name'],
    ['192.0.2.1.:25', skip('address-literal'), 'the same with a port'],
  ];
  it.each(skipped)('%j -> skip (%s)', (key, want) => {
    expect(normalizeDomainKey(key)).toEqual(want);
  });

  // [key, reason class (the metric label), why pattern (for a person), rule]. Every one is answered
  // NOTFOUND: a key that cannot carry a policy never stops a delivery (docs/decisions.md "Lookup keys").
  const invalid: Array<[string, KeySkipReason, RegExp, string]> = [
    ['', 'not-a-hostname', /empty/, 'empty key'],
    ['.', 'not-a-hostname', /empty/, 'the root alone'],
    ['example.com..', 'not-a-hostname', /trailing dot/, 'two trailing dots'],
    ['exa mple.com', 'not-a-hostname', /white space/, 'space'],
    [' example.com', 'not-a-hostname', /white space/, 'leading space'],
    ['example.com\u3000', 'not-a-hostname', /white space/, 'ideographic space'],
    ['example.com\n', 'not-a-hostname', /control/, 'LF'],
    ['exam\u0000ple.com', 'not-a-hostname', /control/, 'NUL'],
    ['example.com\u007f', 'not-a-hostname', /control/, 'DEL'],
    ['example.com\u0085', 'not-a-hostname', /control/, 'C1 control'],
    ['exa_mple.com', 'not-a-hostname', /inner hyphens/, 'underscore'],
    ['relay_1.example.com', 'not-a-hostname', /inner hyphens/, 'unbracketed relay with an underscore (issue 13)'],
    ['_dmarc.example.com', 'not-a-hostname', /inner hyphens/, 'leading underscore label'],
    ['-example.com', 'not-a-hostname', /inner hyphens/, 'leading hyphen in a label'],
    ['example-.com', 'not-a-hostname', /inner hyphens/, 'trailing hyphen in a label'],
    ['a..example.com', 'not-a-hostname', /empty label/, 'empty label'],
    ['user@example.com', 'not-a-hostname', /inner hyphens/, 'an address, not a domain'],
    ['example.com/x', 'not-a-hostname', /inner hyphens/, 'slash'],
    [`${label63}a.example`, 'too-long', /label longer than 63/, '64-octet label'],
    [`a${name253}`, 'too-long', /longer than 253/, '254 octets'],
    [`${'a'.repeat(64)}_x.example`, 'too-long', /label longer than 63/, 'too long is said before what else is wrong'],
    ['bücher.xn--zz', 'bad-idn', /internationalized/, 'bad punycode next to a U-label'],
    ['\ud800.example', 'bad-idn', /internationalized/, 'lone surrogate'],
    ['１２７.０.０.１', 'address-literal', /IP address in Unicode form/, 'full-width digits map to an IPv4 address'],
    ['01.2.3.4', 'not-a-hostname', /numeric top-level label/, 'malformed IPv4, not a domain'],
    ['1.2.3', 'not-a-hostname', /numeric top-level label/, 'short IPv4 form, not a domain (RFC 3696 §2)'],
    ['example.com:', 'not-a-hostname', /bad port/, 'empty port'],
    ['example.com:0', 'not-a-hostname', /bad port/, 'port 0'],
    ['example.com:65536', 'not-a-hostname', /bad port/, 'port too large'],
    ['example.com:-25', 'not-a-hostname', /bad port/, 'negative port'],
    ['a:b:25', 'not-a-hostname', /colon in domain/, 'two colons, not an IPv6 address'],
    [':25', 'not-a-hostname', /empty/, 'port without a domain'],
    ['[mx.example.com', 'not-a-hostname', /malformed/, 'unclosed bracket'],
    ['[mx.example.com]x', 'not-a-hostname', /malformed/, 'junk after the bracket'],
    ['[[mx.example.com]]', 'not-a-hostname', /malformed/, 'nested brackets'],
    ['[]', 'not-a-hostname', /empty \[next hop\]/, 'empty brackets'],
    ['[mx.example.com]:', 'not-a-hostname', /bad port/, 'bracket with empty port'],
    ['[mx.example.com]:99999', 'not-a-hostname', /bad port/, 'bracket with port too large'],
  ];
  it.each(invalid)('%j -> invalid, %s (%s)', (key, reason, why) => {
    const got = normalizeDomainKey(key);
    expect(got).toEqual({ kind: 'invalid', reason, why: expect.stringMatching(why) });
  });

  it('every key without a domain has a reason from the closed set', () => {
    for (const [key] of [...skipped, ...invalid]) {
      const got = normalizeDomainKey(key);
      expect(got.kind).not.toBe('domain');
      if (got.kind !== 'domain') expect(KEY_SKIP_REASONS).toContain(keySkipReason(got));
    }
  });

  it('never throws: odd keys come back invalid', () => {
    for (const key of ['\u0000', '[', ']', ':', '*', '*.example.com', '%', '\ufffd', 'a'.repeat(10_000)]) {
      expect(normalizeDomainKey(key).kind).toBe('invalid');
    }
  });
});
