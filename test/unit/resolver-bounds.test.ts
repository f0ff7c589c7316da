/**
 * What the resolver holds is bounded whatever the world does: the hot tier in entries and bytes
 * (cache.memory_max_bytes), expired policies pruned from memory and store (RFC 8461 §5.1: never used
 * past max_age), pending resolutions capped (resolver.max_pending) with answers at once beyond the cap.
 * DNS and HTTPS are the scripted stand-ins of resolver-world.ts, with a controllable clock: no sleeps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../src/cache/memory-store.js';
import { SqliteStore } from '../../src/cache/sqlite-store.js';
import type { PolicyStore } from '../../src/cache/store.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import type { LookupTier } from '../../src/resolver/observer.js';
import { Pruner } from '../../src/resolver/pruner.js';
import type { LookupResult } from '../../src/resolver/types.js';
import { OPTIONS, policyText, world } from './resolver-world.js';

/** A policy body of about 60 KB of `mx` lines: the shape that costs the most memory per byte. */
function bigPolicy(maxAge: number, size = 60_000): string {
  let mx = '';
  for (let i = 0; mx.length < size - 60; i++) mx += `mx: mx${i}.example.net\n`;
  return `version: STSv1\nmode: enforce\n${mx}max_age: ${maxAge}\n`;
}

/**
 * A policy body of about 60 KB that parses fast (for the 2,000-domain run): 100 `mx` lines and one long
 * extension line (RFC 8461 §3.2 sts-policy-ext-value has no length limit).
 */
function bigPolicyFewLines(maxAge: number, size = 60_000): string {
  let head = 'version: STSv1\nmode: enforce\n';
  for (let i = 0; i < 100; i++) head += `mx: mx${i}.example.net\n`;
  const tail = `max_age: ${maxAge}\n`;
  return `${head}x-note: ${'n'.repeat(size - head.length - tail.length - 10)}\n${tail}`;
}

/** pino writing JSON lines into an array, to count what was said at which level. */
function capture() {
  const lines: Array<Record<string, unknown> & { level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines, at: (level: number, msg: string) => lines.filter((l) => l.level === level && l.msg === msg) };
}
const DEBUG = 20;
const WARN = 40;
const ERROR = 50;
const flushLogs = () => new Promise((r) => setImmediate(r));

/** Whether `p` settles before the next macrotask: "at once", without a timer or I/O in between. */
async function atOnce<T>(p: Promise<T>): Promise<T | 'not at once'> {
  return Promise.race([p, new Promise<'not at once'>((r) => setImmediate(() => r('not at once')))]);
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('resolver: the hot tier is bounded in bytes', () => {
  it('60 KB policies fill at most cache.memory_max_bytes; an evicted domain is answered from the store', async () => {
    const maxBytes = 1024 * 1024;
    const w = world(new MemoryStore(), undefined, {}, undefined, { memoryEntries: 10_000, memoryMaxBytes: maxBytes });
    for (let i = 0; i < 30; i++) {
      w.publish(`d${i}.example`, 'a1', bigPolicy(86400));
      expect(await w.resolver.lookup(`d${i}.example`)).toMatchObject({ kind: 'policy', source: 'fetch' });
      expect(w.resolver.stats.hotBytes).toBeLessThanOrEqual(maxBytes);
    }
    expect(w.resolver.stats.hotEntries).toBeLessThan(30);
    expect(w.resolver.stats.hotEntries).toBeGreaterThan(0);
    expect(await w.resolver.lookup('d0.example')).toMatchObject({ kind: 'policy', source: 'store' });
    expect(w.calls.fetch).toBe(30);
  });
});

describe('resolver: warming from the store stops at the byte bound', () => {
  it('loads what fits in cache.memory_max_bytes, not the whole store through the tier', async () => {
    const maxBytes = 1024 * 1024;
    const filled = world(new MemoryStore(), undefined, {}, undefined, { memoryEntries: 10_000 });
    for (let i = 0; i < 30; i++) {
      filled.publish(`d${i}.example`, 'a1', bigPolicy(86400));
      await filled.resolver.lookup(`d${i}.example`);
    }
    const w = world(filled.store, filled.now(), {}, undefined, { memoryEntries: 10_000, memoryMaxBytes: maxBytes });
    const loaded = await w.resolver.warmFromStore();
    expect(loaded).toBeGreaterThan(0);
    expect(loaded).toBeLessThan(30);
    expect(w.resolver.stats).toMatchObject({ hotEntries: loaded });
    expect(w.resolver.stats.hotBytes).toBeLessThanOrEqual(maxBytes);
  });
});

describe('resolver: expired entries leave the memory tier', () => {
  it('pruneMemory() drops policies past max_age and negative entries past their time, and reports each policy dropped', async () => {
    const dropped: string[] = [];
    const w = world(new MemoryStore(), undefined, { policy: (d, mode) => mode === undefined && dropped.push(d) });
    for (const d of ['a.example', 'b.example']) {
      w.publish(d, 'a1', policyText('enforce', 60));
      await w.resolver.lookup(d);
    }
    w.publish('long.example', 'a1', policyText('enforce', 86400));
    await w.resolver.lookup('long.example');
    await w.resolver.lookup('absent.example'); // a negative entry, negativeTtlMs long
    expect(w.resolver.stats.hotEntries).toBe(4);

    expect(w.resolver.pruneMemory(w.now() + 59_999)).toBe(0);
    w.advance(60_000); // exactly max_age: expired (RFC 8461 §5.1)
    expect(w.resolver.pruneMemory()).toBe(2);
    expect(dropped.sort()).toEqual(['a.example', 'b.example']);
    // The negative entry's time (negativeTtlMs, 60 s here) has run out as well.
    expect(OPTIONS.negativeTtlMs).toBe(60_000);
    expect(w.resolver.stats.hotEntries).toBe(1);
    expect(w.resolver.policyCounts()).toEqual({ enforce: 1, testing: 0, none: 0 });
  });
});

describe('2,000 domains with 60 KB policies and max_age 60 (issue 13)', () => {
  const cases: Array<[string, () => PolicyStore & { bytes: number }]> = [
    ['memory', () => new MemoryStore({ maxBytes: DEFAULTS.cache.store_max_bytes })],
    [
      'sqlite',
      () => {
        const dir = mkdtempSync(join(tmpdir(), 'resolver-bounds-'));
        dirs.push(dir);
        return new SqliteStore({ path: join(dir, 'cache.db'), maxBytes: DEFAULTS.cache.store_max_bytes });
      },
    ],
  ];
  it.each(cases)(
    'with the %s store: never over the configured bytes; after expiry and one prune, an empty memory tier and an empty store',
    { timeout: 120_000 },
    async (_name, makeStore) => {
      const store = makeStore();
      const memoryMaxBytes = DEFAULTS.cache.memory_max_bytes;
      const w = world(store, undefined, {}, undefined, { memoryEntries: DEFAULTS.resolver.memory_entries, memoryMaxBytes });
      const pruner = new Pruner(w.resolver, store, { intervalMs: DEFAULTS.cache.prune_interval_ms, now: w.now }, pino({ level: 'silent' }));
      try {
        const body = bigPolicyFewLines(60);
        expect(body.length).toBeGreaterThan(59_000);
        for (let i = 0; i < 2_000; i++) {
          w.publish(`d${i}.example`, 'a1', body);
          expect(await w.resolver.lookup(`d${i}.example`)).toMatchObject({ kind: 'policy', source: 'fetch' });
          if (i % 100 === 99) {
            expect(w.resolver.stats.hotBytes).toBeLessThanOrEqual(memoryMaxBytes);
            await store.flush();
            expect(store.bytes).toBeLessThanOrEqual(DEFAULTS.cache.store_max_bytes);
          }
        }
        await store.flush();
        expect(await store.count()).toBeGreaterThan(0);

        w.advance(60_000);
        const pruned = await pruner.run();
        expect(pruned.memory).toBeGreaterThan(0);
        expect(pruned.store).toBeGreaterThan(0);
        expect(w.resolver.stats.hotEntries).toBe(0);
        expect(w.resolver.stats.hotBytes).toBe(0);
        expect(await store.count()).toBe(0);
        // Nothing of it is ever answered again.
        w.publish('d0.example', null);
        expect(await w.resolver.lookup('d0.example')).toMatchObject({ kind: 'none', why: 'no-record' });
      } finally {
        await pruner.stop();
        await store.close();
      }
    },
  );
});

describe('pruner', () => {
  it('start() runs every prune_interval_ms (timers, not sleeps), stop() ends it; a failing store is one warning, its recovery one line', async () => {
    // Only the interval is faked: the promise queue and setImmediate (pino, flushLogs) stay real.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const log = capture();
      let failing = true;
      const calls: number[] = [];
      const store = new MemoryStore();
      const flaky = Object.assign(Object.create(store) as MemoryStore, {
        prune: async (now: number) => {
          calls.push(now);
          if (failing) throw new Error('SQLITE_IOERR: disk I/O error');
          return 0;
        },
      });
      const pruner = new Pruner(null, flaky, { intervalMs: 1_000, now: () => 42 }, log.logger);
      pruner.start();
      await vi.advanceTimersByTimeAsync(3_500);
      expect(calls).toEqual([42, 42, 42]);
      failing = false;
      await vi.advanceTimersByTimeAsync(1_000);
      await pruner.stop();
      await vi.advanceTimersByTimeAsync(5_000);
      expect(calls).toHaveLength(4);
      await flushLogs();
      expect(log.at(WARN, 'cache store prune failed; expired entries stay until the next run')).toHaveLength(1);
      expect(log.at(DEBUG, 'cache store prune failed')).toHaveLength(2);
      expect(log.lines.filter((l) => l.msg === 'cache store pruning works again')).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('resolver: pending resolutions are capped (resolver.max_pending)', () => {
  it('tarpitting policy hosts hold at most max_pending resolutions; beyond it lookups are answered at once, from cache or none:overload, and counted', async () => {
    const log = capture();
    const tiers: LookupTier[] = [];
    const overloads: string[] = [];
    const store = new MemoryStore();
    const w = world(store, undefined, { lookup: (_r, tier) => tiers.push(tier), overload: (d) => overloads.push(d) }, log.logger, {
      maxPending: 5,
      maxConcurrentFetches: 2,
      answerDeadlineMs: 60_000,
    });
    // Known before the tarpit: one domain in the memory tier, one only in the store.
    w.publish('cached.example', 'c1', policyText('enforce'));
    await w.resolver.lookup('cached.example');
    const stored = (await store.get('cached.example'))!;
    await store.put({ ...stored, domain: 'stored.example' });

    const release = w.gate(); // every policy host from now on accepts and never answers
    const stuck: Array<Promise<LookupResult>> = [];
    for (let i = 0; i < 5; i++) {
      w.publish(`tarpit${i}.example`, 'a1', policyText());
      stuck.push(w.resolver.lookup(`tarpit${i}.example`));
    }
    await flushLogs();
    expect(w.resolver.stats).toMatchObject({ inflight: 5, fetchesActive: 2, fetchesQueued: 3 });

    for (let i = 5; i < 20; i++) {
      w.publish(`tarpit${i}.example`, 'a1', policyText());
      expect(await atOnce(w.resolver.lookup(`tarpit${i}.example`))).toEqual({ kind: 'none', domain: `tarpit${i}.example`, why: 'overload' });
    }
    expect(await atOnce(w.resolver.lookup('cached.example'))).toMatchObject({ kind: 'policy', source: 'memory' });
    expect(await atOnce(w.resolver.lookup('stored.example'))).toMatchObject({ kind: 'policy', source: 'store' });
    // A due re-check or refresh starts nothing either: the cached policy answers.
    w.advance(OPTIONS.recheckIntervalMs);
    expect(await atOnce(w.resolver.lookup('cached.example'))).toMatchObject({ kind: 'policy', source: 'memory' });
    expect(await atOnce(w.resolver.refresh('cached.example'))).toMatchObject({ kind: 'policy', source: 'memory' });
    expect(w.resolver.stats).toMatchObject({ inflight: 5, fetchesActive: 2, fetchesQueued: 3, overloaded: 15 });
    expect(overloads).toHaveLength(15);
    expect(tiers.filter((t) => t === 'overload')).toHaveLength(15);
    expect(w.calls.fetch).toBe(1 + 2); // cached.example before the tarpit, then the two fetch slots

    // Said once per minute, with the count of what was not said.
    await flushLogs();
    const warning = 'resolver.max_pending resolutions under way: answering from cache or with no policy, without resolving';
    expect(log.at(WARN, warning)).toHaveLength(1);
    w.advance(60_000);
    await w.resolver.lookup('tarpit99.example');
    await flushLogs();
    expect(log.at(WARN, warning).map((l) => l.suppressed)).toEqual([0, 14]);

    release();
    expect((await Promise.all(stuck)).map((r) => r.kind)).toEqual(['policy', 'policy', 'policy', 'policy', 'policy']);
    await w.resolver.settle();
    expect(w.resolver.stats).toMatchObject({ inflight: 0, fetchesActive: 0, fetchesQueued: 0 });
    // Below the cap again, a new domain is resolved.
    expect(await w.resolver.lookup('tarpit7.example')).toMatchObject({ kind: 'policy', source: 'fetch' });
  });
});

describe('resolver: unexpected exceptions are reason internal', () => {
  it('a collaborator throwing a plain error: none:failed with reason internal, one error line with the stack, counted as a fetch outcome', async () => {
    const log = capture();
    const outcomes: string[] = [];
    const w = world(new MemoryStore(), undefined, { fetch: (o) => outcomes.push(o) }, log.logger);
    w.publish('bug.example', 'a1', new TypeError("Cannot read properties of undefined (reading 'body')"));
    const r = await w.resolver.lookup('bug.example');
    expect(r).toMatchObject({ kind: 'none', why: 'failed', error: { reason: 'internal', message: "Cannot read properties of undefined (reading 'body')" } });
    expect(outcomes).toEqual(['internal']);
    await flushLogs();
    const errors = log.at(ERROR, 'unexpected exception in a resolution');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ domain: 'bug.example', reason: 'internal' });
    expect(String((errors[0]!.err as { stack: string }).stack)).toMatch(/^TypeError: Cannot read properties/);
  });

  it('DNS throwing something untyped is internal too, not dns; a cached policy stays in force', async () => {
    const log = capture();
    const outcomes: string[] = [];
    const w = world(new MemoryStore(), undefined, { fetch: (o) => outcomes.push(o) }, log.logger);
    w.publish('example.com', 'a1', policyText('enforce'));
    await w.resolver.lookup('example.com');
    w.txtFails('example.com', new RangeError('Invalid array length'));
    w.advance(OPTIONS.recheckIntervalMs);
    const r = await w.resolver.refresh('example.com');
    expect(r).toMatchObject({ kind: 'policy', entry: { lastError: { reason: 'internal' } } });
    expect(outcomes).toEqual(['ok', 'internal']);
    await flushLogs();
    expect(log.at(ERROR, 'unexpected exception in a resolution')).toHaveLength(1);
  });

  it('an exception where nothing catches it (a store whose put() throws synchronously) still answers: lookup() never rejects', async () => {
    const log = capture();
    const store = new MemoryStore();
    store.put = () => {
      throw new Error('store bug');
    };
    const w = world(store, undefined, {}, log.logger);
    w.publish('example.com', 'a1', policyText('enforce'));
    const r = await w.resolver.lookup('example.com');
    expect(r).toMatchObject({ kind: 'none', why: 'failed', error: { reason: 'internal', message: 'store bug' } });
    await flushLogs();
    expect(log.at(ERROR, 'unexpected exception in a resolution')).toHaveLength(1);
  });
});

describe('resolver: a store that cannot be read', () => {
  it('is a warning once a minute with the count of failures not logged, and lookups resolve without it', async () => {
    const log = capture();
    const store = new MemoryStore();
    store.get = async () => {
      throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    };
    const w = world(store, undefined, {}, log.logger);
    for (let i = 0; i < 10; i++) {
      w.publish(`d${i}.example`, 'a1', policyText());
      expect(await w.resolver.lookup(`d${i}.example`)).toMatchObject({ kind: 'policy', source: 'fetch' });
    }
    w.advance(60_000);
    w.publish('late.example', 'a1', policyText());
    await w.resolver.lookup('late.example');
    await flushLogs();
    const warnings = log.at(WARN, 'cache store read failed; resolving without it');
    expect(warnings.map((l) => [l.suppressed, l.err])).toEqual([
      [0, 'disk I/O error'],
      [9, 'disk I/O error'],
    ]);
    expect(log.at(DEBUG, 'cache store read failed')).toHaveLength(9);
  });
});
