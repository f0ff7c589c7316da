/**
 * Fleet leases in the resolver (issue 11) against a real redis-server: several resolvers, each with its own
 * connection to one store, as several daemons of a fleet would be. DNS answers and policy bodies are
 * scripted (test/unit/resolver-world.ts) so that fetches can be counted, held and failed at will; the
 * built daemons against real DNS and HTTPS servers are in fleet-daemons.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { RedisStore } from '../../src/cache/redis-store.js';
import { StsError } from '../../src/errors.js';
import type { ResolverObserver } from '../../src/resolver/observer.js';
import { startRedis, type RedisLab } from '../lab/redis.js';
import { policyText, world } from '../unit/resolver-world.js';

const DEADLINE_MS = 3_000;
const WAIT_MS = 600;

let redis: RedisLab;
const stores: RedisStore[] = [];

beforeAll(async () => {
  redis = await startRedis();
}, 30_000);

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

afterAll(async () => {
  await redis?.close();
});

/** Counts of what one resolver reported about leases. */
interface Counts {
  waits: number;
  timeouts: number;
  fleetHits: number;
}

/** `n` resolvers on one Redis, each under its own key prefix per test (`ns`), with scripted worlds. */
async function fleet(n: number, ns: string, options: { leaseTtlMs?: number } = {}) {
  const members = [];
  for (let i = 0; i < n; i++) {
    const store = await RedisStore.open({ url: redis.url, keyPrefix: `${ns}:policy:`, leasePrefix: `${ns}:lease:` });
    stores.push(store);
    const counts: Counts = { waits: 0, timeouts: 0, fleetHits: 0 };
    const observer: ResolverObserver = {
      leaseWait: () => counts.waits++,
      leaseTimeout: () => counts.timeouts++,
      fleetHit: () => counts.fleetHits++,
    };
    const w = world(store, Date.now(), observer, pino({ level: 'silent' }), {
      answerDeadlineMs: DEADLINE_MS,
      leaseWaitMs: WAIT_MS,
      leaseTtlMs: options.leaseTtlMs ?? 5_000,
      maxConcurrentFetches: 64,
    });
    members.push({ ...w, counts });
  }
  return members;
}

const fetches = (members: Array<{ calls: { fetch: number } }>) => members.reduce((sum, m) => sum + m.calls.fetch, 0);

describe('fleet leases on a shared Redis store', () => {
  it('one fetch per domain when every daemon is asked about the same new domains at once', async () => {
    const members = await fleet(5, 'once');
    const domains = Array.from({ length: 50 }, (_, i) => `d${i}.fleet.test`);
    for (const m of members) for (const d of domains) m.publish(d, 'v1', policyText('enforce', 86400, `mx.${d}`));

    const answers = await Promise.all(members.flatMap((m) => domains.map((d) => m.resolver.lookup(d))));
    expect(answers.every((a) => a.kind === 'policy')).toBe(true);
    expect(fetches(members)).toBe(domains.length);
    // Whoever did not fetch a domain took it from the store, and said so.
    const hits = members.reduce((sum, m) => sum + m.counts.fleetHits, 0);
    expect(hits).toBe(domains.length * (members.length - 1));
    expect(members.every((m) => m.counts.timeouts === 0)).toBe(true);
  }, 30_000);

  it('a holder that never finishes costs the others one wait, then they fetch themselves within the deadline', async () => {
    const [holder, ...others] = await fleet(3, 'stuck');
    for (const m of [holder!, ...others]) m.publish('stuck.fleet.test', 'v1', policyText());
    holder!.gate(); // its fetch never returns: a crashed or hung holder, lease still in Redis
    void holder!.resolver.lookup('stuck.fleet.test');
    await new Promise((r) => setTimeout(r, 100)); // the holder has the lease

    const started = Date.now();
    const answers = await Promise.all(others.map((m) => m.resolver.lookup('stuck.fleet.test')));
    const took = Date.now() - started;
    expect(answers.map((a) => a.kind)).toEqual(['policy', 'policy']);
    expect(took).toBeGreaterThanOrEqual(WAIT_MS - 50);
    expect(took).toBeLessThan(DEADLINE_MS);
    for (const m of others) expect(m.counts).toMatchObject({ waits: 1, timeouts: 1 });
  }, 30_000);

  it("a lapsed lease is taken over: the wait ends when the holder's lease expires", async () => {
    const [holder, other] = await fleet(2, 'lapse', { leaseTtlMs: 200 });
    for (const m of [holder!, other!]) m.publish('lapse.fleet.test', 'v1', policyText());
    holder!.gate();
    void holder!.resolver.lookup('lapse.fleet.test');
    await new Promise((r) => setTimeout(r, 50));

    const answer = await other!.resolver.lookup('lapse.fleet.test');
    expect(answer.kind).toBe('policy');
    // It waited, then took the lapsed lease and fetched: no timeout.
    expect(other!.counts).toMatchObject({ waits: 1, timeouts: 0 });
    expect(other!.calls.fetch).toBe(1);
  }, 30_000);

  it('a holder whose fetch fails gives the lease back at once: the next daemon tries, without waiting out the wait', async () => {
    const [a, b] = await fleet(2, 'fail');
    a!.publish('fail.fleet.test', 'v1', new StsError('tls', 'handshake failed'));
    b!.publish('fail.fleet.test', 'v1', policyText());
    const release = a!.gate();
    const first = a!.resolver.lookup('fail.fleet.test');
    await new Promise((r) => setTimeout(r, 50));
    const second = b!.resolver.lookup('fail.fleet.test');
    await new Promise((r) => setTimeout(r, 100));
    const released = Date.now();
    release();
    expect((await first).kind).toBe('none');
    expect((await second).kind).toBe('policy');
    expect(Date.now() - released).toBeLessThan(WAIT_MS);
    expect(b!.counts).toMatchObject({ waits: 1, timeouts: 0 });
  }, 30_000);

  it('a proactive refresh runs once for the fleet; the others take its result from the store', async () => {
    const members = await fleet(3, 'refresh');
    for (const m of members) m.publish('r.fleet.test', 'v1', policyText('enforce', 86400));
    await Promise.all(members.map((m) => m.resolver.lookup('r.fleet.test')));
    expect(fetches(members)).toBe(1);

    // Past half of max_age a refetch is due everywhere, under a new id.
    for (const m of members) {
      m.advance(50_000 * 1000);
      m.publish('r.fleet.test', 'v2', policyText('testing', 86400));
    }
    const txtBefore = members.reduce((sum, m) => sum + m.calls.txt, 0);
    const refreshed = await Promise.all(members.map((m) => m.resolver.refresh('r.fleet.test')));
    // One daemon refreshed (one TXT query, one fetch); the others came back later or, if it had already
    // finished, took its result from the store.
    expect(fetches(members)).toBe(2);
    expect(members.reduce((sum, m) => sum + m.calls.txt, 0) - txtBefore).toBe(1);
    expect(refreshed.filter((r) => r.kind === 'policy' && r.entry.id === 'v2').length).toBeGreaterThanOrEqual(1);

    // At their next look they find the new policy in the store: no DNS, no fetch.
    // (Only those not yet refreshed: the refresher offers a domain only when it is due.)
    const behind = members.filter((_, i) => refreshed[i]!.kind === 'policy' && (refreshed[i] as { entry: { id: string } }).entry.id === 'v1');
    const txtBetween = members.reduce((sum, m) => sum + m.calls.txt, 0);
    const again = await Promise.all(behind.map((m) => m.resolver.refresh('r.fleet.test')));
    expect(again.map((r) => (r.kind === 'policy' ? r.entry.policy.mode : r.kind))).toEqual(behind.map(() => 'testing'));
    expect(fetches(members)).toBe(2);
    expect(members.reduce((sum, m) => sum + m.calls.txt, 0)).toBe(txtBetween);
    expect(members.reduce((sum, m) => sum + m.counts.fleetHits, 0)).toBeGreaterThanOrEqual(2);
  }, 30_000);

  // A frozen Redis costs each new domain one read and two lease tries, each cut off by the store's 0.5 s
  // command timeout (1.5 s), then the fetch: inside the deadline, never an error answer.
  it('with Redis away, every daemon resolves by itself (no waiting on a lease that cannot be asked)', async () => {
    const members = await fleet(2, 'away');
    for (const m of members) m.publish('away.fleet.test', 'v1', policyText());
    redis.freeze();
    try {
      const started = Date.now();
      const answers = await Promise.all(members.map((m) => m.resolver.lookup('away.fleet.test')));
      expect(answers.map((a) => a.kind)).toEqual(['policy', 'policy']);
      expect(Date.now() - started).toBeLessThan(DEADLINE_MS);
      expect(members.every((m) => m.counts.waits === 0)).toBe(true);
    } finally {
      redis.thaw();
    }
  }, 30_000);
});
