/**
 * Keys that cannot carry a policy, as the Postfix and Exim handlers answer them (issue 13): `NOTFOUND `
 * and `mode=none reason=<class>`, never PERM or error= (Postfix and the contrib Exim router defer on
 * those), without asking the resolver, each told to onSkippedKey once with its closed-set reason and
 * logged at debug. And the Postfix handler keeps its replies within maxReplyBytes.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { eximLookupHandler } from '../../src/server/exim/lookup.js';
import { postfixMapHandler } from '../../src/server/postfix/map.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import { KEY_SKIP_REASONS, type KeySkipReason } from '../../src/sts/domain.js';
import { parsePolicy } from '../../src/sts/policy.js';

const ZONES = { default: { strict_testing: false, tlsrpt: false }, tlsrpt: { strict_testing: false, tlsrpt: true } };

/** A resolver with one enforce policy per domain, counting its lookups. */
function resolver(mx: string[] = ['mx1.example.com']) {
  const text = ['version: STSv1', 'mode: enforce', ...mx.map((m) => `mx: ${m}`), 'max_age: 86400', ''].join('\n');
  const policy = parsePolicy(text);
  const asked: string[] = [];
  const lookup: PolicyLookup = {
    async lookup(domain): Promise<LookupResult> {
      asked.push(domain);
      const entry = { domain, id: '1', policy, text, fetchedAt: 0, expiresAt: 1e15, checkedAt: 0, lastError: null, failures: 0 };
      return { kind: 'policy', domain, entry, source: 'memory' };
    },
  };
  return { lookup, asked };
}

/** A pino logger that keeps what it writes. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

// [key as Postfix or Exim sends it, reason class, where it comes from]
const SKIPPED: Array<[string, KeySkipReason, string]> = [
  ['[smtp_relay.corp]', 'next-hop', 'relayhost = [smtp_relay.corp]: all outbound mail used to stall'],
  ['[relay_1.example.com]:587', 'next-hop', 'a submission relayhost with an underscore'],
  ['relay_1.example.com', 'not-a-hostname', 'a transport next hop with an underscore'],
  ['foo_bar.example.com', 'not-a-hostname', 'a recipient domain with an underscore'],
  ['192.0.2.1.', 'address-literal', 'an address written as an absolute name'],
  ['[192.0.2.1]', 'address-literal', 'an address literal'],
  ['.example.com', 'parent-probe', "Postfix's parent-domain probe"],
  ['localhost', 'single-label', 'a single label'],
  [`${'a'.repeat(64)}.example`, 'too-long', 'a label over 63 octets'],
  [`${'abcdefgh.'.repeat(29)}example`, 'too-long', 'a name over 253 octets'],
  ['bücher.xn--zz', 'bad-idn', 'bad punycode'],
  ['a..example.com', 'not-a-hostname', 'an empty label'],
  ['example.com:99999', 'not-a-hostname', 'a port out of range'],
];

describe('postfixMapHandler: keys with no policy to look up', () => {
  it.each(SKIPPED)('%j -> NOTFOUND, reason %s (%s)', async (key, reason) => {
    const { lookup, asked } = resolver();
    const told: KeySkipReason[] = [];
    const { logger, lines } = recordingLogger();
    const handler = postfixMapHandler(lookup, ZONES, { onSkippedKey: (r) => told.push(r), logger });
    expect(await handler('postfix', key)).toBe('NOTFOUND ');
    expect(asked).toEqual([]);
    expect(told).toEqual([reason]);
    expect(lines).toEqual([expect.objectContaining({ level: 20, key, reason, msg: 'socketmap: key has no policy to look up' })]);
  });

  it('names only reasons from the closed set', () => {
    for (const [, reason] of SKIPPED) expect(KEY_SKIP_REASONS).toContain(reason);
  });

  it('a domain is looked up, and not told as skipped', async () => {
    const { lookup, asked } = resolver();
    const told: KeySkipReason[] = [];
    const handler = postfixMapHandler(lookup, ZONES, { onSkippedKey: (r) => told.push(r) });
    expect(await handler('postfix', 'Example.COM.')).toBe('OK secure match=mx1.example.com servername=hostname');
    expect(asked).toEqual(['example.com']);
    expect(told).toEqual([]);
  });
});

describe('postfixMapHandler: maxReplyBytes', () => {
  const mx = Array.from({ length: 5000 }, (_, i) => `mx${i}.example.net`);

  it('5000 mx lines in a TLSRPT zone: the enforce directive whole, without TLSRPT, logged at info', async () => {
    const { lookup } = resolver(mx);
    const { logger, lines } = recordingLogger();
    const reply = await postfixMapHandler(lookup, ZONES, { logger })('tlsrpt', 'example.com');
    expect(reply).toBe(`OK secure match=${mx.join(':')} servername=hostname`);
    expect(Buffer.byteLength(reply)).toBeLessThanOrEqual(100_000);
    expect(lines).toEqual([expect.objectContaining({ level: 30, domain: 'example.com', shortened: 'tlsrpt-dropped', limit: 100_000 })]);
  });

  it('a configured limit below the names: parent domains, logged as a warning', async () => {
    const { lookup } = resolver(mx);
    const { logger, lines } = recordingLogger();
    const reply = await postfixMapHandler(lookup, ZONES, { logger, maxReplyBytes: 2048 })('postfix', 'example.com');
    expect(reply).toBe('OK secure match=.example.net servername=hostname');
    expect(lines).toEqual([expect.objectContaining({ level: 40, shortened: 'match-widened', limit: 2048 })]);
  });
});

describe('eximLookupHandler: domains with no policy to look up', () => {
  const silent = pino({ level: 'silent' });

  it.each(SKIPPED)('policy %j -> mode=none reason=%s (%s)', async (domain, reason) => {
    const { lookup, asked } = resolver();
    const told: KeySkipReason[] = [];
    const handler = eximLookupHandler(lookup, { onSkippedKey: (r) => told.push(r) });
    expect(await handler({ verb: 'policy', domain }, silent)).toBe(`mode=none reason=${reason}\n`);
    expect(await handler({ verb: 'mx', domain, host: 'mx1.example.com' }, silent)).toBe(`allowed=yes mode=none reason=${reason}\n`);
    expect(asked).toEqual([]);
    expect(told).toEqual([reason, reason]);
  });

  it.each<[string, string]>([
    ['mx_1.example.com', 'allowed=no'],
    ['MX1.example.com.', 'allowed=yes'],
    ['mx1..example.com', 'allowed=no'],
  ])('mx enforce.example %j: %s, an answer and not an error', async (host, allowed) => {
    const { lookup } = resolver();
    const reply = await eximLookupHandler(lookup)({ verb: 'mx', domain: 'enforce.example', host }, silent);
    expect(reply).toBe(`${allowed} mode=enforce mx=mx1.example.com\n`);
  });
});
