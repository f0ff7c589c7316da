/**
 * The reserved socketmap names: `mx-filter` (Postfix smtp_dns_reply_filter) and `requiretls` (Postfix
 * 3.11 smtp_requiretls_policy). Keys as Postfix's dns_strrecord() writes them; answers per RFC 8461 §4.1.
 */
import { describe, expect, it } from 'vitest';
import { IGNORE_REPLY, mxFilterReply, requireTlsReply } from '../../src/answer/postfix-filters.js';
import type { Verdict } from '../../src/answer/postfix.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import { parseDnsReplyKey, type DnsReplyKey } from '../../src/server/postfix/dns-reply.js';
import { mxFilterHandler, requireTlsHandler, withReservedMaps } from '../../src/server/postfix/filter-maps.js';
import { parsePolicy } from '../../src/sts/policy.js';

describe('parseDnsReplyKey: dns_strrecord() text', () => {
  it.each<[string, DnsReplyKey | undefined, string]>([
    ['example.com. 300 IN MX 10 mx1.example.com.', { kind: 'mx', owner: 'example.com', preference: 10, exchange: 'mx1.example.com' }, 'MX: "%u %s."'],
    ['Example.COM. 0 IN MX 0 MX1.Example.Net.', { kind: 'mx', owner: 'example.com', preference: 0, exchange: 'mx1.example.net' }, 'case folded'],
    ['example.com. 300 IN MX 65535 mx.example.com.', { kind: 'mx', owner: 'example.com', preference: 65535, exchange: 'mx.example.com' }, '16-bit preference'],
    ['example.com. 300 IN MX 65536 mx.example.com.', undefined, 'preference beyond 16 bits'],
    ['example.com. 300 IN MX 10 mx1.example.com', undefined, 'exchange without its final dot'],
    ['example.com. 300 IN MX mx1.example.com.', undefined, 'no preference'],
    ['example.com 300 IN MX 10 mx1.example.com.', undefined, 'owner without its final dot'],
    ['mx1.example.com. 300 IN A 192.0.2.1', { kind: 'other', type: 'A' }, 'A: not ours'],
    ['mx1.example.com. 300 IN AAAA 2001:db8::1', { kind: 'other', type: 'AAAA' }, 'AAAA: not ours'],
    ['_25._tcp.mx1.example.com. 300 IN TLSA 3 1 1 abcdef', { kind: 'other', type: 'TLSA' }, 'TLSA: DANE is Postfix\'s own'],
    ['example.com', undefined, 'a bare domain (a TLS policy key sent to the wrong map)'],
    ['', undefined, 'empty'],
  ])('%j -> %j (%s)', (key, want) => {
    expect(parseDnsReplyKey(key)).toEqual(want);
  });
});

const policy = (mode: string, ...mx: string[]) =>
  parsePolicy(`version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: 86400\n`);
const verdict = (mode: string, ...mx: string[]): Verdict => ({ kind: 'policy', domain: 'example.com', policy: policy(mode, ...mx), text: '' });

describe('mxFilterReply: RFC 8461 §4.1 for the DNS reply filter', () => {
  it.each<[string, Verdict, string, boolean, string]>([
    ['listed exactly', verdict('enforce', 'mx1.example.com'), 'mx1.example.com', false, 'NOTFOUND '],
    ['not listed', verdict('enforce', 'mx1.example.com'), 'evil.example.org', false, IGNORE_REPLY],
    ['one label under *.', verdict('enforce', '*.example.net'), 'a.example.net', false, 'NOTFOUND '],
    ['two labels under *.: exactly one allowed', verdict('enforce', '*.example.net'), 'a.b.example.net', false, IGNORE_REPLY],
    ['the wildcard parent itself', verdict('enforce', '*.example.net'), 'example.net', false, IGNORE_REPLY],
    ['testing: report-only', verdict('testing', 'mx1.example.com'), 'evil.example.org', false, 'NOTFOUND '],
    ['testing with strict_testing', verdict('testing', 'mx1.example.com'), 'evil.example.org', true, IGNORE_REPLY],
    ['mode none', verdict('none'), 'evil.example.org', true, 'NOTFOUND '],
    ['no policy', { kind: 'none' }, 'evil.example.org', true, 'NOTFOUND '],
  ])('%s', (_rule, v, host, strict, want) => {
    expect(mxFilterReply(v, host, strict)).toBe(want);
  });
});

describe('requireTlsReply', () => {
  it.each<[string, Verdict, boolean, string]>([
    ['enforce', verdict('enforce', 'mx1.example.com'), false, 'OK enforce'],
    ['testing', verdict('testing', 'mx1.example.com'), false, 'OK opportunistic+starttls'],
    ['testing, strict_testing', verdict('testing', 'mx1.example.com'), true, 'OK enforce'],
    ['none', verdict('none'), false, 'OK opportunistic+starttls'],
    ['no policy', { kind: 'none' }, false, 'OK opportunistic+starttls'],
  ])('%s', (_rule, v, strict, want) => {
    expect(requireTlsReply(v, strict, 'opportunistic+starttls')).toBe(want);
  });
});

describe('mx-filter and requiretls handlers', () => {
  const asked: string[] = [];
  const resolver: PolicyLookup = {
    async lookup(domain): Promise<LookupResult> {
      asked.push(domain);
      if (domain !== 'example.com') return { kind: 'none', domain, why: 'no-record' };
      const now = Date.now();
      const entry = { domain, id: '1', policy: policy('enforce', 'mx1.example.com'), text: '', fetchedAt: now, expiresAt: now + 1e6, checkedAt: now, lastError: null, failures: 0 };
      return { kind: 'policy', domain, entry, source: 'fetch' };
    },
  };
  const options = { strictTesting: false, requireTlsOtherwise: 'opportunistic+starttls' as const };
  const handler = withReservedMaps(
    { mxFilter: 'mx-filter', requireTls: 'requiretls' },
    { mxFilter: mxFilterHandler(resolver, options), requireTls: requireTlsHandler(resolver, options) },
    (name, key) => `policy ${name} ${key}`,
  );

  it('drops an unlisted MX of an enforced domain and keeps a listed one, after resolving the domain', async () => {
    expect(await handler('mx-filter', 'example.com. 300 IN MX 10 mx1.example.com.')).toBe('NOTFOUND ');
    expect(await handler('mx-filter', 'example.com. 300 IN MX 20 backup.example.org.')).toBe('OK IGNORE');
    expect(asked).toContain('example.com');
  });

  it('answers other records, unreadable keys and non-domains at once, without a lookup', () => {
    asked.length = 0;
    for (const key of ['mx1.example.com. 300 IN A 192.0.2.1', 'garbage', 'x_y.example. 1 IN MX 1 mx.example.com.', '192.0.2.1. 300 IN MX 10 mx.example.com.']) {
      expect(handler('mx-filter', key)).toBe('NOTFOUND ');
    }
    expect(asked).toEqual([]);
  });

  it('asks REQUIRETLS enforce only where the policy is enforced, the configured action elsewhere', async () => {
    expect(await handler('requiretls', 'example.com')).toBe('OK enforce');
    expect(await handler('requiretls', 'plain.example')).toBe('OK opportunistic+starttls');
    expect(handler('requiretls', '[relay_1.example.com]:587')).toBe('OK opportunistic+starttls');
  });

  it('sends every other map name to the policy map', () => {
    expect(handler('postfix', 'example.com')).toBe('policy postfix example.com');
  });
});
