import { describe, expect, it } from 'vitest';
import { stsErrorOf } from './sts-error-of.js';
import { isHostname, mxMatches, parseMxValue, policyAllowsMx } from '../../src/sts/mx.js';
import type { MxPattern } from '../../src/sts/types.js';
import type { Policy } from '../../src/sts/types.js';

/** The pattern of a value that needs nothing forgiven. */
const parseMxPattern = (value: string): MxPattern => {
  const read = parseMxValue(value);
  if (read.trailingDot) throw new Error(`${value}: unexpected trailing dot`);
  return read.pattern;
};


const label63 = 'a'.repeat(63);
// Exactly 253 octets: four 61-octet labels, four dots, and a 5-octet last label.
const name253 = `${'a'.repeat(61)}.${'b'.repeat(61)}.${'c'.repeat(61)}.${'d'.repeat(61)}.abcde`;

describe('parseMxValue: RFC 8461 §3.2 sts-policy-mx-value = ["*."] Domain', () => {
  // [value, wildcard, domain]
  const good: Array<[string, boolean, string]> = [
    ['mx.example.com', false, 'mx.example.com'], // plain Domain
    ['*.example.net', true, 'example.net'], // wildcard leftmost label
    ['MX.Example.COM', false, 'mx.example.com'], // stored lower case (§4.1 compares case-insensitively)
    ['*.EXAMPLE.net', true, 'example.net'], // wildcard, lower-cased
    ['example.com', false, 'example.com'], // two labels suffice
    ['mx-1.ex-ample.com', false, 'mx-1.ex-ample.com'], // inner hyphens
    ['1mx.123.example', false, '1mx.123.example'], // labels may start with a digit (RFC 1123 §2.1)
    ['xn--bcher-kva.example', false, 'xn--bcher-kva.example'], // A-label
    [`${label63}.example`, false, `${label63}.example`], // 63-octet label
    [name253, false, name253], // 253 octets
    ['*.a.b.c.example', true, 'a.b.c.example'], // wildcard over a deep domain
  ];
  it.each(good)('accepts %j', (value, wildcard, domain) => {
    expect(parseMxValue(value)).toEqual({ pattern: { wildcard, domain }, trailingDot: false });
  });

  // Forgiven (docs/decisions.md): one trailing dot, as in a zone file. [value, wildcard, domain]
  const forgiven: Array<[string, boolean, string]> = [
    ['mx.example.com.', false, 'mx.example.com'], // absolute name
    ['*.example.net.', true, 'example.net'], // wildcard, absolute
    ['MX.Example.COM.', false, 'mx.example.com'], // lower-cased as well
    [`${name253}.`, false, name253], // 253 octets plus the root dot
  ];
  it.each(forgiven)('accepts %j with its trailing dot reported', (value, wildcard, domain) => {
    expect(parseMxValue(value)).toEqual({ pattern: { wildcard, domain }, trailingDot: true });
  });

  // [value, why]
  const bad: Array<[string, RegExp]> = [
    ['', /empty name/], // empty
    ['*.', /empty name/], // wildcard of nothing
    ['*', /leftmost label/], // bare star
    ['*.*.example.com', /leftmost label/], // two wildcards
    ['**.example.com', /leftmost label/], // double star
    ['*mx.example.com', /leftmost label/], // star inside a label
    ['mx.*.example.com', /leftmost label/], // star not leftmost
    ['*example.com', /leftmost label/], // star without dot
    ['.example.com', /empty label/], // leading dot
    ['mx..example.com', /empty label/], // empty label
    ['mx.example.com..', /more than one trailing dot/], // one dot is forgiven, not two
    ['.', /empty label/], // the root alone
    ['*.example.net..', /more than one trailing dot/], // wildcard with two dots
    ['localhost.', /single label/], // one label, dot or not
    ['*.com.', /single label/], // wildcard over a single label, dot or not
    ['localhost', /single label/], // one label
    ['*.com', /single label/], // wildcard over a single label
    ['-mx.example.com', /inner hyphens/], // leading hyphen
    ['mx-.example.com', /inner hyphens/], // trailing hyphen
    ['mx_1.example.com', /inner hyphens/], // underscore
    ['mx example.com', /inner hyphens/], // space
    ['møx.example', /inner hyphens/], // U-label: A-labels only
    ['mx.example.com:25', /inner hyphens/], // port
    ['192.0.2.1]', /inner hyphens/], // bracket
    [`${label63}a.example`, /label longer than 63/], // 64-octet label
    [`a${name253}`, /longer than 253/], // 254 octets
  ];
  it.each(bad)('rejects %j (%s)', (value, why) => {
    const err = stsErrorOf(() => parseMxValue(value));
    expect(err.reason).toBe('parse');
    expect(err.message).toMatch(why);
  });
});

describe('isHostname: LDH labels, 2+ labels, <= 253 octets, no trailing dot', () => {
  const cases: Array<[string, boolean]> = [
    ['example.com', true],
    ['EXAMPLE.COM', true],
    ['a.b', true],
    [name253, true],
    [`a${name253}`, false],
    ['example', false],
    ['example.com.', false],
    ['', false],
    ['exa_mple.com', false],
    ['*.example.com', false],
  ];
  it.each(cases)('%j -> %s', (name, want) => {
    expect(isHostname(name)).toBe(want);
  });
});

describe('mxMatches: RFC 8461 §4.1 MX host matching', () => {
  const exact = parseMxPattern('mx1.example.com');
  const wild = parseMxPattern('*.example.net');

  // [pattern, MX host, matches, rule]
  const cases: Array<[string, string, boolean, string]> = [
    ['mx1.example.com', 'mx1.example.com', true, 'identical'],
    ['mx1.example.com', 'MX1.Example.COM', true, 'case-insensitive'],
    ['mx1.example.com', 'mx1.example.com.', true, 'trailing dot of an absolute name ignored'],
    ['mx1.example.com', 'mx1.example.com..', false, 'only one trailing dot'],
    ['mx1.example.com', 'mx2.example.com', false, 'different host'],
    ['mx1.example.com', 'a.mx1.example.com', false, 'no implicit subdomains'],
    ['mx1.example.com', 'example.com', false, 'no implicit parents'],
    ['mx1.example.com', 'mx1.example.com.evil', false, 'not a prefix match'],
    ['mx1.example.com', '', false, 'empty host'],
    ['*.example.net', 'mx1.example.net', true, 'wildcard: one extra leftmost label'],
    ['*.example.net', 'MX1.EXAMPLE.NET.', true, 'wildcard: case and trailing dot'],
    ['*.example.net', 'example.net', false, 'wildcard: needs one label'],
    ['*.example.net', 'a.b.example.net', false, 'wildcard: exactly one label, not more'],
    ['*.example.net', '.example.net', false, 'wildcard: the label is not empty'],
    ['*.example.net', 'mx1example.net', false, 'wildcard: label boundary'],
    ['*.example.net', 'mx1.example.net.evil', false, 'wildcard: suffix must end the name'],
    ['*.example.net', 'mx1.notexample.net', false, 'wildcard: whole labels'],
  ];
  it.each(cases)('%s vs %j -> %s (%s)', (pattern, host, want) => {
    expect(mxMatches(parseMxPattern(pattern), host)).toBe(want);
  });

  it('compares an upper-case pattern built by hand case-insensitively', () => {
    expect(mxMatches({ wildcard: false, domain: 'MX1.Example.com' }, 'mx1.example.com')).toBe(true);
    expect(mxMatches({ wildcard: true, domain: 'Example.NET' }, 'mx.example.net')).toBe(true);
  });

  it('policyAllowsMx: any pattern of the policy matches', () => {
    const policy: Policy = { version: 'STSv1', mode: 'enforce', maxAge: 1, mx: [exact, wild], extensions: [] };
    expect(policyAllowsMx(policy, 'mx1.example.com')).toBe(true);
    expect(policyAllowsMx(policy, 'backup.example.net')).toBe(true);
    expect(policyAllowsMx(policy, 'mx2.example.com')).toBe(false);
    expect(policyAllowsMx(policy, 'a.b.example.net')).toBe(false);
    expect(policyAllowsMx({ ...policy, mode: 'none', mx: [] }, 'mx1.example.com')).toBe(false);
  });
});
