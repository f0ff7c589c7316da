/**
 * The cached-answer path's shortcuts (BENCHMARKS.md) give the same answers as the general code they
 * bypass: the ASCII request parser (against the grammar written plainly), the resolver's memory-only
 * lookup (against lookup()), and the map handler that answers at once (against its own later answers).
 */
import { describe, expect, it } from 'vitest';
import { parseSocketmapRequest } from '../../src/server/postfix/session.js';
import { postfixMapHandler } from '../../src/server/postfix/map.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import type { ResolverObserver } from '../../src/resolver/observer.js';
import { MemoryStore } from '../../src/cache/memory-store.js';
import { Resolver } from '../../src/resolver/resolver.js';
import { parsePolicy } from '../../src/sts/policy.js';
import { pino } from 'pino';
import { OPTIONS, policyText, world } from './resolver-world.js';

const ZONES = {
  default: { strict_testing: false, tlsrpt: false },
  strict: { strict_testing: true, tlsrpt: false },
  tlsrpt: { strict_testing: false, tlsrpt: true },
};

/** The request parser as it was before the ASCII shortcut: the reference. */
function referenceParse(payload: Buffer) {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    return { error: 'request is not valid UTF-8' };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) return { error: 'request contains control characters' };
  const space = text.indexOf(' ');
  if (space < 0) return { error: 'request is not "name key"' };
  if (space === 0) return { error: 'empty map name' };
  const key = text.slice(space + 1);
  if (key === '') return { error: 'empty key' };
  return { name: text.slice(0, space), key };
}

describe('parseSocketmapRequest', () => {
  it('agrees with the general parser on ASCII, control bytes, DEL, UTF-8 and invalid UTF-8', () => {
    const cases = [
      'postfix example.com', 'postfix  example.com', 'postfix ', ' example.com', 'postfix', '', ' ', 'a b c',
      'postfix exa\u0000mple.com', 'postfix \u007f', 'postfix\texample.com', 'p\u0001 k', 'postfix b\u00fccher.example',
      'postfix \u{1F600}.example', 'x '.repeat(300),
    ].map((s) => Buffer.from(s, 'utf8'));
    cases.push(Buffer.from([0x70, 0x20, 0xff]), Buffer.from([0x70, 0x20, 0xc3]), Buffer.from([0xc3, 0xa9, 0x20, 0x61]));
    let seed = 7;
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.alloc(1 + (i % 12));
      for (let j = 0; j < b.length; j++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        const r = seed >>> 8;
        b[j] = r % 4 === 0 ? 0x20 : r % 7 === 0 ? r % 256 : 0x61 + (r % 26);
      }
      cases.push(b);
    }
    for (const payload of cases) expect(parseSocketmapRequest(payload), payload.toString('hex')).toEqual(referenceParse(payload));
  });
});

describe('Resolver.lookupHot', () => {
  it('answers from memory what lookup() would, with the same observer reports, and nothing else', async () => {
    const reports: string[] = [];
    const observer: ResolverObserver = { lookup: (r, tier) => reports.push(`${tier}:${r.kind}`) };
    const w = world(new MemoryStore(), 1_000_000_000_000, observer);
    w.publish('example.com', 'a1', policyText());
    expect(w.resolver.lookupHot('example.com')).toBeUndefined();
    await w.resolver.lookup('example.com');
    await w.resolver.lookup('plain.example');
    reports.length = 0;

    const hot = w.resolver.lookupHot('example.com');
    expect(hot).toMatchObject({ kind: 'policy', source: 'memory' });
    expect(await w.resolver.lookup('example.com')).toEqual(hot);
    expect(w.resolver.lookupHot('plain.example')).toEqual({ kind: 'none', domain: 'plain.example', why: 'no-record' });
    expect(reports).toEqual(['memory:policy', 'memory:policy', 'negative:none']);
    expect(w.calls).toEqual({ txt: 2, fetch: 1 });

    // Past the negative TTL, memory has no answer: lookup() resolves again.
    w.advance(OPTIONS.negativeTtlMs);
    expect(w.resolver.lookupHot('plain.example')).toBeUndefined();
  });

  it('starts the background re-check when one is due, as lookup() does', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText());
    await w.resolver.lookup('example.com');
    w.advance(OPTIONS.recheckIntervalMs);
    expect(w.resolver.lookupHot('example.com')).toMatchObject({ kind: 'policy' });
    await w.resolver.settle();
    expect(w.calls.txt).toBe(2);
  });

  it('drops an expired policy and leaves the answer to lookup()', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText('enforce', 60));
    await w.resolver.lookup('example.com');
    w.advance(61_000);
    expect(w.resolver.lookupHot('example.com')).toBeUndefined();
  });
});

describe('postfixMapHandler', () => {
  it('answers cached domains and keys that need no lookup at once, with the reply it gave when it resolved', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText('enforce', 86400, 'mx1.example.com\nmx: *.mx.example.net'));
    w.publish('testing.example', 't1', policyText('testing'));
    const handler = postfixMapHandler(w.resolver, ZONES);
    const keys = ['example.com', 'EXAMPLE.com.', 'testing.example', 'plain.example', '.example.com', '[mx]:25', 'bad key', 'localhost'];
    for (const name of ['postfix', 'strict', 'tlsrpt']) {
      const first = new Map<string, string>();
      for (const key of keys) first.set(key, await handler(name, key)); // learn
      for (const key of keys) {
        const now = handler(name, key);
        expect(typeof now, `${name} ${key}`).toBe('string');
        expect(now).toBe(first.get(key));
      }
    }
    expect(handler('postfix', 'example.com')).toBe('OK secure match=mx1.example.com:.mx.example.net servername=hostname');
    expect(handler('strict', 'testing.example')).toMatch(/^OK secure match=/);
    expect(handler('postfix', 'testing.example')).toBe('NOTFOUND ');
    // Not cached yet: a promise.
    w.publish('new.example', 'n1', policyText());
    const later = handler('postfix', 'new.example');
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toMatch(/^OK secure match=/);
  });

  it('works with a lookup that has no memory tier (always a promise)', async () => {
    const lookup: PolicyLookup = { lookup: async (domain): Promise<LookupResult> => ({ kind: 'none', domain, why: 'no-record' }) };
    const handler = postfixMapHandler(lookup, ZONES);
    const r = handler('postfix', 'example.com');
    expect(r).toBeInstanceOf(Promise);
    expect(await r).toBe('NOTFOUND ');
    expect(handler('postfix', '.example.com')).toBe('NOTFOUND ');
  });
});

describe('Resolver.warmFromStore', () => {
  it('lets I/O run between batches while it loads a large store', async () => {
    const store = new MemoryStore();
    const now = Date.now();
    const text = policyText();
    for (let n = 0; n < 5_000; n++) {
      await store.put({ domain: `d${n}.example`, id: '1', policy: parsePolicy(text), text, fetchedAt: now, expiresAt: now + 86_400_000, checkedAt: now, lastError: null, failures: 0 });
    }
    const unused = async (): Promise<never> => {
      throw new Error('no network in this test');
    };
    const resolver = new Resolver(
      { dns: { txt: unused, addresses: unused }, fetcher: { fetch: unused }, store, logger: pino({ level: 'silent' }) },
      { ...OPTIONS, memoryEntries: 10_000 },
    );
    let loadedWhenIoRan = -1;
    const warming = resolver.warmFromStore();
    setImmediate(() => (loadedWhenIoRan = resolver.stats.hotEntries));
    expect(await warming).toBe(5_000);
    expect(loadedWhenIoRan).toBeGreaterThan(0);
    expect(loadedWhenIoRan).toBeLessThan(5_000);
    expect(resolver.lookupHot('d4999.example')).toMatchObject({ kind: 'policy' });
  });
});
