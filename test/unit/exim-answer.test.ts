/** What Exim is told for each policy and MX host, and how values are quoted for Exim's ${extract}. */
import { describe, expect, it } from 'vitest';
import {
  eximErrorReply,
  eximMxReply,
  eximPolicyReply,
  eximValue,
  eximVerdictOf,
  type EximVerdict,
} from '../../src/answer/exim.js';
import type { CacheEntry } from '../../src/cache/store.js';
import type { NoPolicyWhy } from '../../src/resolver/types.js';
import type { KeySkipReason } from '../../src/sts/domain.js';
import type { Mode, Policy } from '../../src/sts/types.js';

const policy = (mode: Mode, mx: string[]): Policy => ({
  version: 'STSv1',
  mode,
  maxAge: 604800,
  mx: mx.map((m) => (m.startsWith('*.') ? { wildcard: true, domain: m.slice(2) } : { wildcard: false, domain: m })),
  extensions: [],
});
const has = (mode: Mode, mx: string[] = ['mx1.example.com', '*.mx.example.net']): EximVerdict => ({
  kind: 'policy',
  id: '20240101T1',
  policy: policy(mode, mx),
});
const none = (why: NoPolicyWhy | KeySkipReason): EximVerdict => ({ kind: 'none', why });

/**
 * Exim 4.96 `${extract{key}{string}}` (expand.c expand_getkeyed, string.c string_dequote), written from
 * the spec's description: keys end at `=` or white space, a value runs to white space unless it starts
 * with `"`, and quoted values take backslash escapes. The real Exim reads our replies in test/exim.
 */
function extract(key: string, s: string): string | undefined {
  let i = 0;
  const space = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (space(s[i])) i++;
  while (i < s.length) {
    const start = i;
    while (i < s.length && s[i] !== '=' && !space(s[i])) i++;
    const k = s.slice(start, i);
    while (space(s[i])) i++;
    if (s[i] === '=') {
      i++;
      while (space(s[i])) i++;
    }
    let v = '';
    if (s[i] !== '"') {
      while (i < s.length && !space(s[i])) v += s[i++];
    } else {
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        v += s[i++];
      }
      i++;
    }
    if (k.toLowerCase() === key.toLowerCase()) return v;
    while (space(s[i])) i++;
  }
  return undefined;
}

describe('eximPolicyReply', () => {
  it.each<[string, EximVerdict, string]>([
    ['enforce: mode, the mx patterns as one quoted list, id and max_age', has('enforce'),
      'mode=enforce mx="mx1.example.com *.mx.example.net" id=20240101T1 max_age=604800\n'],
    ['a single pattern needs no quotes', has('enforce', ['*.example.org']),
      'mode=enforce mx=*.example.org id=20240101T1 max_age=604800\n'],
    ['testing: reported as it is; enforcing it is the router\'s choice', has('testing', ['mx.example.com']),
      'mode=testing mx=mx.example.com id=20240101T1 max_age=604800\n'],
    ['a mode none policy has no mx: an empty value is quoted', has('none', []),
      'mode=none mx="" id=20240101T1 max_age=604800\n'],
    ['no record published', none('no-record'), 'mode=none reason=no-record\n'],
    ['a record that is not valid', none('invalid-record'), 'mode=none reason=invalid-record\n'],
    ['discovery or fetch failed, nothing cached', none('failed'), 'mode=none reason=failed\n'],
    ['the answer deadline passed', none('deadline'), 'mode=none reason=deadline\n'],
    ['not a domain MTA-STS applies to', none('not-applicable'), 'mode=none reason=not-applicable\n'],
    // A key with no policy to look up is an answer with its class, never error= (which defers).
    ['a name with an underscore', none('not-a-hostname'), 'mode=none reason=not-a-hostname\n'],
    ['a bracketed next hop', none('next-hop'), 'mode=none reason=next-hop\n'],
    ['an address literal', none('address-literal'), 'mode=none reason=address-literal\n'],
    ['an over-long name', none('too-long'), 'mode=none reason=too-long\n'],
  ])('%s', (_rule, verdict, want) => {
    expect(eximPolicyReply(verdict)).toBe(want);
  });
});

describe('eximMxReply: RFC 8461 §4.1 matching', () => {
  it.each<[string, EximVerdict, string, string]>([
    ['exact name listed', has('enforce'), 'mx1.example.com', 'yes'],
    ['exact name, other case', has('enforce'), 'MX1.Example.COM', 'yes'],
    ['exact name, absolute (trailing dot)', has('enforce'), 'mx1.example.com.', 'yes'],
    ['name not listed', has('enforce'), 'mx2.example.com', 'no'],
    ['a subdomain of an exact name is not it', has('enforce'), 'a.mx1.example.com', 'no'],
    ['*. covers one label', has('enforce'), 'a.mx.example.net', 'yes'],
    ['*. does not cover two labels', has('enforce'), 'a.b.mx.example.net', 'no'],
    ['*. does not cover the bare domain', has('enforce'), 'mx.example.net', 'no'],
    ['*. is not a suffix match on a label', has('enforce'), 'amx.example.net', 'no'],
    ['testing: the same rule, reported', has('testing'), 'evil.example', 'no'],
    ['testing: a listed host', has('testing'), 'mx1.example.com', 'yes'],
    ['mode none: nothing is constrained', has('none', []), 'anything.example', 'yes'],
    ['no policy: nothing is constrained', none('no-record'), 'anything.example', 'yes'],
    // An MX name that is no host name matches no pattern: refused under a policy, never an error.
    ['an underscore matches no exact pattern', has('enforce'), 'mx_1.example.com', 'no'],
    ['*. stands for one LDH label, not "a_b"', has('enforce'), 'a_b.mx.example.net', 'no'],
    ['an empty label matches nothing', has('enforce'), 'mx1..example.com', 'no'],
    ['no policy: an odd MX name is allowed', none('no-record'), 'mx_1.example.com', 'yes'],
    ['a key with no policy to look up: allowed', none('not-a-hostname'), 'mx_1.example.com', 'yes'],
  ])('%s: %s -> allowed=%s', (_rule, verdict, host, allowed) => {
    const reply = eximMxReply(verdict, host);
    expect(extract('allowed', reply)).toBe(allowed);
  });

  it.each<[string, EximVerdict, string, string]>([
    ['with a policy: allowed, mode and the patterns', has('enforce'), 'a.b.mx.example.net',
      'allowed=no mode=enforce mx="mx1.example.com *.mx.example.net"\n'],
    ['without: allowed, mode none and the reason', none('failed'), 'mx.example.com',
      'allowed=yes mode=none reason=failed\n'],
  ])('%s', (_rule, verdict, host, want) => {
    expect(eximMxReply(verdict, host)).toBe(want);
  });
});

describe('eximErrorReply', () => {
  it.each<[string, string, string]>([
    ['a plain reason', 'usage: policy DOMAIN', 'error="usage: policy DOMAIN"\n'],
    ['control characters become one space', 'bad\r\nline\x00here', 'error="bad line here"\n'],
    ['quotes and backslashes are escaped', 'unknown request "a\\b"', 'error="unknown request \\"a\\\\b\\""\n'],
    ['one word needs no quotes', 'timeout', 'error=timeout\n'],
  ])('%s', (_rule, reason, want) => {
    expect(eximErrorReply(reason)).toBe(want);
  });

  it('long reasons are cut to 200 characters', () => {
    expect(extract('error', eximErrorReply('x'.repeat(1000)))).toBe('x'.repeat(200));
  });

  it('has no mode key, so it is never read as an answer', () => {
    expect(extract('mode', eximErrorReply('mode=enforce'))).toBeUndefined();
  });
});

describe('eximValue', () => {
  it.each<[string, string]>([
    ['enforce', 'enforce'],
    ['604800', '604800'],
    ['*.example.net', '*.example.net'],
    ['', '""'],
    ['a b', '"a b"'],
    ['a\tb', '"a\tb"'],
    ['"x', '"\\"x"'],
    ['back\\slash', '"back\\\\slash"'],
    ['k=v', '"k=v"'],
  ])('%j -> %s', (value, want) => {
    expect(eximValue(value)).toBe(want);
  });

  it.each(['', 'a b', '"', '\\', 'x" y=z', ' lead', 'trail ', 'ü é', 'a=b c=d'])(
    '%j reads back unchanged through ${extract}',
    (value) => {
      expect(extract('k', `a=1 k=${eximValue(value)} z=2`)).toBe(value);
      expect(extract('z', `k=${eximValue(value)} z=2`)).toBe('2');
    },
  );
});

describe('eximVerdictOf', () => {
  const entry = { domain: 'example.com', id: 'abc', policy: policy('enforce', ['mx.example.com']) } as CacheEntry;

  it('a policy carries the TXT id it was fetched under', () => {
    expect(eximVerdictOf({ kind: 'policy', domain: 'example.com', entry, source: 'memory' })).toEqual({
      kind: 'policy',
      id: 'abc',
      policy: entry.policy,
    });
  });

  it('no policy carries the reason', () => {
    expect(eximVerdictOf({ kind: 'none', domain: 'example.com', why: 'deadline' })).toEqual({ kind: 'none', why: 'deadline' });
  });
});
