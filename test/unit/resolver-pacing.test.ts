/**
 * A policy host cannot make the daemon fetch more often than once per `resolver.min_fetch_interval_ms`
 * per domain: not with a tiny max_age, not with an id that changes at every look, not with a stream of
 * lookups. Failed fetches are paced by failure_retry_ms (resolver.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { OPTIONS, policyText, world } from './resolver-world.js';
import type { LookupResult } from '../../src/resolver/types.js';

const mode = (r: LookupResult) => (r.kind === 'policy' ? r.entry.policy.mode : `none:${r.why}`);

describe('resolver: fetch pacing per domain', () => {
  it('max_age 0: one fetch, then no policy (never an expired one) until the interval has passed', async () => {
    const w = world();
    w.publish('zero.example', 'z1', policyText('enforce', 0));
    await w.resolver.lookup('zero.example');
    for (let i = 0; i < 50; i++) {
      w.advance(100);
      const r = await w.resolver.lookup('zero.example');
      // The policy lasted 0 s: it is never served, and the host is not asked again within the interval.
      expect(mode(r)).toBe('none:paced');
    }
    expect(w.calls.fetch).toBe(1);
    w.advance(OPTIONS.minFetchIntervalMs);
    await w.resolver.lookup('zero.example');
    expect(w.calls.fetch).toBe(2);
  });

  it('an id that changes at every look gets at most one fetch per interval; the cached policy stands meanwhile', async () => {
    const w = world();
    w.publish('churn.example', 'c0', policyText('enforce', 86400));
    await w.resolver.lookup('churn.example');
    for (let i = 1; i <= 20; i++) {
      w.publish('churn.example', `c${i}`, policyText('enforce', 86400, `mx${i}.example`));
      w.advance(5_000);
      // refresh() is what the refresher and `cache refresh` call: it skips the recheck interval.
      expect(mode(await w.resolver.refresh('churn.example'))).toBe('enforce');
    }
    // 100 s of churn: the first fetch, and one more after 60 s.
    expect(w.calls.fetch).toBe(2);
  });

  it('a short max_age above the interval is still refetched before it lapses', async () => {
    const w = world();
    w.publish('short.example', 's1', policyText('enforce', 2 * OPTIONS.minFetchIntervalMs / 1000 + 10));
    await w.resolver.lookup('short.example');
    w.advance(OPTIONS.minFetchIntervalMs + 5_000);
    await w.resolver.refresh('short.example');
    expect(w.calls.fetch).toBe(2);
  });
});
