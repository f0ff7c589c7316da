/** Proactive refresh: which cached policies are re-checked when, with no traffic to trigger it. */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Refresher } from '../../src/resolver/refresher.js';
import { StsError } from '../../src/errors.js';
import type { RefreshOutcome } from '../../src/resolver/observer.js';
import { MemoryStore } from '../../src/cache/memory-store.js';
import { OPTIONS, policyText, world } from './resolver-world.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

function refresherWorld() {
  const outcomes: Array<[RefreshOutcome, string]> = [];
  const w = world(new MemoryStore(), 1_000_000_000_000, { refresh: (o, d) => outcomes.push([o, d]) });
  const refresher = new Refresher(w.resolver, { tickMs: 60_000, batch: 100, concurrency: 4 }, pino({ level: 'silent' }));
  return { ...w, refresher, outcomes };
}

describe('proactive refresh', () => {
  it('nothing is due right after a policy is learned', async () => {
    const w = refresherWorld();
    w.publish('example.com', 'a1', policyText('enforce', 7 * 86400));
    await w.resolver.lookup('example.com');
    expect(await w.refresher.tick()).toBe(0);
  });

  it('an idle domain is re-checked within the refresh interval (at least daily), without refetching', async () => {
    const w = refresherWorld();
    w.publish('example.com', 'a1', policyText('enforce', 30 * 86400));
    await w.resolver.lookup('example.com');
    w.advance(OPTIONS.refreshIntervalMs);
    expect(await w.refresher.tick()).toBe(1);
    expect(w.calls).toEqual({ txt: 2, fetch: 1 });
    expect(w.outcomes).toEqual([['unchanged', 'example.com']]);
    // Just re-checked: not due again until another interval has passed.
    expect(await w.refresher.tick()).toBe(0);
  });

  it('a changed id is fetched by the refresher, before any mail asks', async () => {
    const w = refresherWorld();
    w.publish('example.com', 'a1', policyText('testing', 30 * 86400));
    await w.resolver.lookup('example.com');
    w.publish('example.com', 'a2', policyText('enforce', 30 * 86400));
    w.advance(OPTIONS.refreshIntervalMs);
    await w.refresher.tick();
    expect(w.outcomes).toEqual([['changed', 'example.com']]);
    expect(await w.resolver.lookup('example.com')).toMatchObject({ kind: 'policy', source: 'memory', entry: { id: 'a2', policy: { mode: 'enforce' } } });
  });

  it('a short-lived policy is refetched once half its max_age has passed, even with the same id (RFC 8461 §10.2)', async () => {
    const w = refresherWorld();
    w.publish('example.com', 'a1', policyText('enforce', 4 * 3600));
    const first = await w.resolver.lookup('example.com');
    w.advance(2 * HOUR);
    expect(await w.refresher.tick()).toBe(1);
    expect(w.calls.fetch).toBe(2);
    const after = await w.resolver.lookup('example.com');
    if (first.kind !== 'policy' || after.kind !== 'policy') throw new Error('expected policies');
    expect(after.entry.expiresAt - first.entry.expiresAt).toBe(2 * HOUR);
  });

  it('a failing host is backed off: doubling delays, never more often than failure_retry', async () => {
    const w = refresherWorld();
    w.publish('example.com', 'a1', policyText('enforce', 30 * 86400));
    await w.resolver.lookup('example.com');
    w.publish('example.com', 'a2', new StsError('tls', 'CERT_HAS_EXPIRED'));
    w.advance(OPTIONS.refreshIntervalMs);
    const attemptsAt: number[] = [];
    // Walk 12 hours in 5-minute steps; record when the refresher actually tries.
    for (let t = 0; t <= 12 * HOUR; t += 5 * 60_000) {
      const before = w.calls.fetch;
      await w.refresher.tick();
      if (w.calls.fetch > before) attemptsAt.push(t);
      w.advance(5 * 60_000);
    }
    const gaps = attemptsAt.slice(1).map((t, i) => t - attemptsAt[i]!);
    expect(attemptsAt.length).toBeGreaterThanOrEqual(3);
    // Each gap at least as long as the one before, none shorter than failure_retry, capped by the max.
    gaps.forEach((g, i) => {
      expect(g).toBeGreaterThanOrEqual(OPTIONS.failureRetryMs);
      if (i > 0) expect(g).toBeGreaterThanOrEqual(gaps[i - 1]!);
      expect(g).toBeLessThanOrEqual(OPTIONS.failureBackoffMaxMs + 5 * 60_000);
    });
    // All the while the cached policy stays in force.
    expect(await w.resolver.lookup('example.com')).toMatchObject({ kind: 'policy', entry: { id: 'a1', failures: attemptsAt.length } });
  });

  it('due domains are taken soonest first, at most a batch per tick', async () => {
    const w = refresherWorld();
    const small = new Refresher(w.resolver, { tickMs: 60_000, batch: 2, concurrency: 1 }, pino({ level: 'silent' }));
    for (const d of ['a.example', 'b.example', 'c.example']) {
      w.publish(d, 'x', policyText('enforce', 30 * 86400));
      await w.resolver.lookup(d);
      // Further apart than the refresh jitter (10% of a day), so the order is certain.
      w.advance(3 * HOUR);
    }
    w.advance(DAY);
    expect(await small.tick()).toBe(2);
    expect(w.outcomes.map(([, d]) => d)).toEqual(['a.example', 'b.example']);
    expect(await small.tick()).toBe(1);
    expect(w.outcomes.map(([, d]) => d)).toEqual(['a.example', 'b.example', 'c.example']);
  });

  it('at resolver.max_pending (tarpitting hosts hold every slot) a tick starts nothing and returns at once; the domains stay due', async () => {
    const outcomes: Array<[RefreshOutcome, string]> = [];
    const w = world(new MemoryStore(), 1_000_000_000_000, { refresh: (o, d) => outcomes.push([o, d]) }, undefined, { maxPending: 3, answerDeadlineMs: 60_000 });
    const refresher = new Refresher(w.resolver, { tickMs: 60_000, batch: 100, concurrency: 4 }, pino({ level: 'silent' }));
    for (const d of ['a.example', 'b.example']) {
      w.publish(d, 'x', policyText('enforce', 30 * 86400));
      await w.resolver.lookup(d);
    }
    w.advance(OPTIONS.refreshIntervalMs);
    const release = w.gate();
    const stuck = ['t0.example', 't1.example', 't2.example'].map((d) => {
      w.publish(d, 'x', policyText());
      return w.resolver.lookup(d);
    });
    await new Promise((r) => setImmediate(r));
    expect(w.resolver.stats.inflight).toBe(3);
    expect(await refresher.tick()).toBe(2);
    expect(outcomes).toEqual([]);
    expect(w.resolver.stats.inflight).toBe(3);
    expect(w.resolver.dueForRefresh(10).sort()).toEqual(['a.example', 'b.example']);
    release();
    await Promise.all(stuck);
    expect(await refresher.tick()).toBe(2);
    expect(outcomes.map(([o]) => o)).toEqual(['unchanged', 'unchanged']);
  });

  it('a policy past its max_age is never refreshed back to life from the cache', async () => {
    const w = refresherWorld();
    w.publish('example.com', 'a1', policyText('enforce', 3600));
    await w.resolver.lookup('example.com');
    w.publish('example.com', 'a1', new StsError('connect', 'ECONNREFUSED'));
    w.advance(2 * HOUR);
    await w.refresher.tick();
    expect(await w.resolver.lookup('example.com')).toMatchObject({ kind: 'none', why: 'failed' });
  });
});

describe('the refresh queue follows the hot tier (issue 12: due work without scanning the cache)', () => {
  async function learned(w: Pick<ReturnType<typeof world>, 'publish' | 'resolver'>, domains: string[], mode: 'enforce' | 'testing' = 'enforce') {
    for (const d of domains) {
      w.publish(d, 'x', policyText(mode, 30 * 86400));
      await w.resolver.lookup(d);
    }
  }

  it('a domain evicted from the hot tier (memory_entries) is no longer due, and no longer counted', async () => {
    const w = world(new MemoryStore(), 1_000_000_000_000, {}, undefined, { memoryEntries: 2 });
    await learned(w, ['a.example', 'b.example', 'c.example']);
    w.advance(OPTIONS.refreshIntervalMs);
    expect(w.resolver.dueForRefresh(10).sort()).toEqual(['b.example', 'c.example']);
    expect(w.resolver.policyCounts()).toEqual({ enforce: 2, testing: 0, none: 0 });
  });

  it('forget() and expiry (pruneMemory) take a domain out of the queue', async () => {
    const w = refresherWorld();
    await learned(w, ['a.example', 'b.example']);
    w.publish('short.example', 'x', policyText('testing', 3600));
    await w.resolver.lookup('short.example');
    w.resolver.forget('a.example');
    w.advance(2 * 3600_000);
    expect(w.resolver.pruneMemory()).toBe(1); // short.example, past its max_age
    w.advance(OPTIONS.refreshIntervalMs);
    expect(w.resolver.dueForRefresh(10)).toEqual(['b.example']);
    expect(w.resolver.policyCounts()).toEqual({ enforce: 1, testing: 0, none: 0 });
  });

  it('a refresh re-schedules the domain once (no duplicate), and a changed mode moves its count', async () => {
    const w = refresherWorld();
    await learned(w, ['a.example'], 'testing');
    w.publish('a.example', 'y', policyText('enforce', 30 * 86400));
    w.advance(OPTIONS.refreshIntervalMs);
    expect(await w.refresher.tick()).toBe(1);
    expect(w.resolver.dueForRefresh(10)).toEqual([]);
    expect(w.resolver.policyCounts()).toEqual({ enforce: 1, testing: 0, none: 0 });
    w.advance(OPTIONS.refreshIntervalMs);
    expect(w.resolver.dueForRefresh(10)).toEqual(['a.example']);
  });
});
