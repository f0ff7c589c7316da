/**
 * The resolver's lifecycle rules (RFC 8461 §5.1 and our caching choices), with its DNS and HTTPS
 * collaborators replaced by scripted stand-ins and a controllable clock. The real network path is
 * covered by test/integration/resolution.test.ts against real servers.
 */
import { describe, expect, it } from 'vitest';
import type { Resolver } from '../../src/resolver/resolver.js';
import { StsError } from '../../src/errors.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { waitFor } from '../lab/wait.js';
import { OPTIONS, policyText, world } from './resolver-world.js';

const mode = (r: Awaited<ReturnType<Resolver['lookup']>>) => (r.kind === 'policy' ? r.entry.policy.mode : `none:${r.why}`);

describe('resolver: discovery and caching', () => {
  it('learns a policy, then answers from memory without DNS or HTTPS', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText());
    const first = await w.resolver.lookup('example.com');
    expect(first).toMatchObject({ kind: 'policy', source: 'fetch' });
    const second = await w.resolver.lookup('example.com');
    expect(second).toMatchObject({ kind: 'policy', source: 'memory' });
    expect(w.calls).toEqual({ txt: 1, fetch: 1 });
  });

  it('a domain without a TXT record is remembered (negative cache) until negative_ttl', async () => {
    const w = world();
    expect(mode(await w.resolver.lookup('plain.example'))).toBe('none:no-record');
    expect(mode(await w.resolver.lookup('plain.example'))).toBe('none:no-record');
    expect(w.calls.txt).toBe(1);
    w.advance(OPTIONS.negativeTtlMs);
    await w.resolver.lookup('plain.example');
    expect(w.calls.txt).toBe(2);
  });

  it('concurrent lookups of one domain share one resolution (single-flight)', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText());
    const open = w.gate();
    const pending = Array.from({ length: 20 }, () => w.resolver.lookup('example.com'));
    await waitFor(() => w.calls.fetch > 0, 'the policy fetch to start (held at the gate)');
    open();
    const results = await Promise.all(pending);
    expect(results.every((r) => r.kind === 'policy')).toBe(true);
    expect(w.calls).toEqual({ txt: 1, fetch: 1 });
  });

  it('answers none:deadline when resolution is slower than the deadline, and finishes in the background', async () => {
    const w = world();
    w.publish('slow.example', 'a1', policyText());
    const open = w.gate();
    const r = await w.resolver.lookup('slow.example');
    expect(mode(r)).toBe('none:deadline');
    open();
    await w.resolver.settle();
    expect(mode(await w.resolver.lookup('slow.example'))).toBe('enforce');
    expect(w.calls.fetch).toBe(1);
  });

  it('several v=STSv1 records are an invalid record: no policy, no fetch (RFC 8461 §3.1)', async () => {
    const w = world();
    w.txtRecords('two.example', [['v=STSv1; id=a1'], ['v=STSv1; id=a2']]);
    expect(await w.resolver.lookup('two.example')).toMatchObject({ kind: 'none', why: 'invalid-record', error: { reason: 'txt' } });
    expect(w.calls.fetch).toBe(0);
  });

  it('TXT records that are not STSv1 are ignored beside the one that is; its strings are joined', async () => {
    const w = world();
    w.publish('mixed.example', 'unused', policyText());
    w.txtRecords('mixed.example', [['v=spf1 -all'], ['v=STSv1; ', 'id=a1']]);
    expect(await w.resolver.lookup('mixed.example')).toMatchObject({ kind: 'policy', entry: { id: 'a1' } });
  });

  it('a failed fetch with nothing cached is not retried before failure_retry', async () => {
    const w = world();
    w.publish('broken.example', 'a1', new StsError('tls', 'CERT_HAS_EXPIRED'));
    const r = await w.resolver.lookup('broken.example');
    expect(r).toMatchObject({ kind: 'none', why: 'failed', error: { reason: 'tls' } });
    await w.resolver.lookup('broken.example');
    w.advance(OPTIONS.failureRetryMs - 1);
    await w.resolver.lookup('broken.example');
    expect(w.calls.fetch).toBe(1);
    w.advance(1);
    await w.resolver.lookup('broken.example');
    expect(w.calls.fetch).toBe(2);
  });

  it('a policy that breaks the grammar is a parse failure, never a policy', async () => {
    const w = world();
    w.publish('bad.example', 'a1', 'version: STSv1\nmode: enforce\nmax_age: 86400\n');
    expect(await w.resolver.lookup('bad.example')).toMatchObject({ kind: 'none', why: 'failed', error: { reason: 'parse' } });
  });
});

/** RFC 8461 §5.1 / §10.2: what happens to a cached policy when the world changes. */
describe('resolver: refresh semantics', () => {
  async function cachedEnforce() {
    const w = world();
    w.publish('example.com', 'a1', policyText('enforce', 86400));
    expect(mode(await w.resolver.lookup('example.com'))).toBe('enforce');
    w.advance(OPTIONS.recheckIntervalMs); // the next lookup triggers a background TXT check
    return w;
  }
  async function recheck(w: Awaited<ReturnType<typeof cachedEnforce>>) {
    const during = await w.resolver.lookup('example.com');
    await w.resolver.settle();
    const after = await w.resolver.lookup('example.com');
    return { during, after };
  }

  const table: Array<[string, (w: Awaited<ReturnType<typeof cachedEnforce>>) => void, string, number]> = [
    // [rule, change to the world, mode answered after the check, fetches in total]
    ['id unchanged: no refetch, policy stands', () => {}, 'enforce', 1],
    ['id changed: new policy fetched and used', (w) => w.publish('example.com', 'a2', policyText('testing')), 'testing', 2],
    ['id changed, fetch fails: cached policy stays in force', (w) => w.publish('example.com', 'a2', new StsError('http-status', 'HTTP 500')), 'enforce', 2],
    ['id changed, new policy invalid: cached policy stays', (w) => w.publish('example.com', 'a2', 'garbage'), 'enforce', 2],
    ['TXT record removed: cached policy stays in force', (w) => w.publish('example.com', null), 'enforce', 1],
    ['DNS SERVFAIL: cached policy stays in force', (w) => w.txtFails('example.com'), 'enforce', 1],
    ['mode none published: replaces the cached policy', (w) => w.publish('example.com', 'a3', policyText('none', 86400, 'x.example')), 'none', 2],
  ];
  it.each(table)('%s', async (_rule, change, want, fetches) => {
    const w = await cachedEnforce();
    change(w);
    const { during, after } = await recheck(w);
    expect(mode(during)).toBe('enforce'); // answered from cache while the check runs
    expect(mode(after)).toBe(want);
    expect(w.calls.fetch).toBe(fetches);
  });

  it('a failed refresh records the error and the failure count on the cached entry', async () => {
    const w = await cachedEnforce();
    w.publish('example.com', 'a2', new StsError('content-type', 'text/html'));
    await recheck(w);
    const entry = (await w.store.get('example.com')) as CacheEntry;
    expect(entry.id).toBe('a1');
    expect(entry.failures).toBe(1);
    expect(entry.lastError).toMatchObject({ reason: 'content-type' });
  });

  it('an expired policy is gone: with the host failing, the answer is no policy', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText('enforce', 3600));
    await w.resolver.lookup('example.com');
    w.publish('example.com', 'a2', new StsError('timeout', 'slow'));
    w.advance(3600_000);
    expect(mode(await w.resolver.lookup('example.com'))).toBe('none:failed');
  });

  it('a warm store answers immediately, before any DNS or fetch', async () => {
    const w = world();
    w.publish('example.com', 'a1', policyText());
    await w.resolver.lookup('example.com');
    await w.store.flush();
    const restarted = world(w.store, w.now());
    expect(await restarted.resolver.lookup('example.com')).toMatchObject({ kind: 'policy', source: 'store', entry: { id: 'a1' } });
    expect(restarted.calls).toEqual({ txt: 0, fetch: 0 });
  });
});
