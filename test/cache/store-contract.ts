/**
 * The behaviour every PolicyStore shares. Each store's test file calls describeCacheStore() once with a
 * factory; store-specific behaviour (corruption, TTLs, outages) is tested next to it, not here.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CacheEntry, PolicyStore } from '../../src/cache/store.js';

export interface StoreUnderTest {
  /** A store with no entries. */
  store: PolicyStore;
  /**
   * Persistent stores: open the same backing data again. The suite has closed `store` (after flush()) before
   * calling this, and closes what it returns.
   */
  reopen?: () => Promise<PolicyStore>;
  /** Called after every store of this test is closed: remove files, keys, ... */
  cleanup?: () => Promise<void>;
}

const T0 = Date.UTC(2026, 0, 1);

/**
 * For remote stores under the contract: a command timeout that a loaded 2-core CI machine cannot reach
 * while 1000 writes are in flight (the default 500 ms is for production, where it bounds an answer's
 * wait). The contract is about what a store keeps, not how fast; the outage tests next to each store
 * keep the production timeouts.
 */
export const CONTRACT_COMMAND_TIMEOUT_MS = 5_000;

/** A complete entry with every field set to something a store could get wrong. */
export function makeEntry(domain: string, overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    domain,
    id: '20260101T000000',
    policy: {
      version: 'STSv1',
      mode: 'enforce',
      maxAge: 604_800,
      mx: [
        { wildcard: false, domain: `mx1.${domain}` },
        { wildcard: true, domain: 'mx.example.net' },
      ],
      extensions: [
        ['x-ext', 'value with spaces'],
        ['x-ext', 'repeated key, kept in order'],
      ],
    },
    // Exactly as fetched: CRLF and LF mixed, trailing space, no final newline.
    text: `version: STSv1\r\nmode: enforce\nmx: mx1.${domain}\r\nmx: *.mx.example.net \nmax_age: 604800`,
    fetchedAt: T0,
    expiresAt: T0 + 604_800_000,
    checkedAt: T0 + 1_234,
    lastError: { reason: 'tls', message: 'certificate has expired: «ünïcode» "quoted"', at: T0 + 5_678 },
    failures: 3,
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function collect(store: PolicyStore): Promise<CacheEntry[]> {
  const out: CacheEntry[] = [];
  for await (const entry of store.list()) out.push(entry);
  return out.sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
}

/**
 * `leases`: the store is one several daemons share and must have the fleet lease (store.ts); the others
 * must have neither method, and the lease cases are not registered for them (never skipped).
 */
export function describeCacheStore(name: string, factory: () => Promise<StoreUnderTest>, options: { leases: boolean } = { leases: false }): void {
  describe(`${name}: PolicyStore contract`, () => {
    let sut: StoreUnderTest;
    let store: PolicyStore;
    /** Every store opened in the current test, closed afterwards (close() is idempotent). */
    let opened: PolicyStore[];

    beforeEach(async () => {
      sut = await factory();
      store = sut.store;
      opened = [store];
    });

    afterEach(async () => {
      for (const s of opened) await s.close();
      await sut.cleanup?.();
    });

    it('starts empty: get() of an unknown domain is undefined, count() is 0, list() yields nothing', async () => {
      expect(await store.get('example.com')).toBeUndefined();
      expect(await store.count()).toBe(0);
      expect(await collect(store)).toEqual([]);
    });

    it('returns what was put, field for field (policy, text, lastError, counters)', async () => {
      const failing = makeEntry('example.com');
      const healthy = makeEntry('example.org', { lastError: null, failures: 0, policy: { ...failing.policy, mode: 'testing', extensions: [] } });
      await store.put(failing);
      await store.put(healthy);
      expect(await store.get('example.com')).toStrictEqual(failing);
      expect(await store.get('example.org')).toStrictEqual(healthy);
    });

    it('hands out copies: mutating a put or a got entry does not change the store', async () => {
      const entry = makeEntry('example.com');
      await store.put(entry);
      entry.policy.mx.push({ wildcard: false, domain: 'evil.example' });
      entry.failures = 99;
      const got = (await store.get('example.com'))!;
      expect(got).toStrictEqual(makeEntry('example.com'));
      got.policy.mode = 'none';
      got.lastError = null;
      expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
    });

    it('put() of a known domain replaces the whole entry', async () => {
      await store.put(makeEntry('example.com'));
      const next = makeEntry('example.com', {
        id: 'second',
        text: 'version: STSv1\nmode: none\nmax_age: 86400\n',
        policy: { version: 'STSv1', mode: 'none', maxAge: 86_400, mx: [], extensions: [] },
        lastError: null,
        failures: 0,
        checkedAt: T0 + 99_000,
      });
      await store.put(next);
      expect(await store.get('example.com')).toStrictEqual(next);
      expect(await store.count()).toBe(1);
    });

    it('delete() is true when something was removed, false otherwise', async () => {
      await store.put(makeEntry('example.com'));
      await store.put(makeEntry('example.org'));
      expect(await store.delete('example.com')).toBe(true);
      expect(await store.get('example.com')).toBeUndefined();
      expect(await store.delete('example.com')).toBe(false);
      expect(await store.delete('never-seen.example')).toBe(false);
      expect(await store.get('example.org')).toStrictEqual(makeEntry('example.org'));
      expect(await store.count()).toBe(1);
    });

    it('delete() after flush() removes the stored entry too', async () => {
      await store.put(makeEntry('example.com'));
      await store.flush();
      expect(await store.delete('example.com')).toBe(true);
      await store.flush();
      expect(await store.get('example.com')).toBeUndefined();
      expect(await store.count()).toBe(0);
    });

    it('list() yields every entry once and count() agrees', async () => {
      const domains = ['a.example', 'b.example', 'example.com', 'mx.example.com', 'xn--bcher-kva.example'];
      for (const d of domains) await store.put(makeEntry(d));
      const listed = await collect(store);
      expect(listed.map((e) => e.domain)).toEqual([...domains].sort());
      for (const e of listed) expect(e).toStrictEqual(makeEntry(e.domain));
      expect(await store.count()).toBe(domains.length);
    });

    it('list() can be consumed while the store is read and written', async () => {
      for (let i = 0; i < 30; i++) await store.put(makeEntry(`d${i}.example`));
      let seen = 0;
      for await (const entry of store.list()) {
        seen++;
        expect(await store.get(entry.domain)).toBeDefined();
        await store.put({ ...entry, failures: entry.failures + 1 });
      }
      expect(seen).toBe(30);
      await store.flush();
      expect((await store.get('d7.example'))!.failures).toBe(4);
    });

    it('domain keys are exact strings: no case folding, no trailing-dot, suffix or prefix matching', async () => {
      await store.put(makeEntry('example.com'));
      for (const other of ['Example.com', 'EXAMPLE.COM', 'example.com.', 'www.example.com', 'xample.com', 'example.co', ' example.com', '']) {
        expect(await store.get(other), JSON.stringify(other)).toBeUndefined();
      }
      await store.put(makeEntry('www.example.com', { id: 'www' }));
      expect((await store.get('example.com'))!.id).toBe('20260101T000000');
      expect((await store.get('www.example.com'))!.id).toBe('www');
      expect(await store.delete('www.example.com')).toBe(true);
      expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
    });

    it('flush() resolves with nothing queued, twice in a row, and keeps entries readable', async () => {
      await store.flush();
      await store.put(makeEntry('example.com'));
      await store.flush();
      await store.flush();
      expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
    });

    it('after close(), reads reject and close() again resolves', async () => {
      await store.put(makeEntry('example.com'));
      await store.close();
      await expect(store.get('example.com')).rejects.toThrow();
      await expect(store.close()).resolves.toBeUndefined();
    });

    it('round-trips 1000 entries', async () => {
      const entries = Array.from({ length: 1000 }, (_, i) =>
        makeEntry(`host-${i}.example`, { failures: i, id: `id${i}`, lastError: i % 2 ? null : makeEntry('x').lastError }),
      );
      await Promise.all(entries.map((e) => store.put(e)));
      expect(await store.count()).toBe(1000);
      for (const e of entries) expect(await store.get(e.domain)).toStrictEqual(e);
      const listed = await collect(store);
      expect(listed).toHaveLength(1000);
      expect(new Set(listed.map((e) => e.domain)).size).toBe(1000);
    });

    // RFC 8461 §5.1: past max_age a policy is never used again, so prune() may drop it. Times are around
    // the wall clock because Redis keeps its own TTLs by it; prune() itself judges by the `now` it is given.
    it('prune(now) removes exactly the entries past max_age (expiresAt <= now), queued or stored, and counts them', async () => {
      const now = Date.now();
      const live = [
        makeEntry('live-week.example', { expiresAt: now + 7 * 86_400_000 }),
        makeEntry('live-by-1ms.example', { expiresAt: now + 1 }),
      ];
      await store.put(makeEntry('gone-yesterday.example', { expiresAt: now - 86_400_000 }));
      await store.put(live[0]!);
      await store.flush();
      await store.put(makeEntry('gone-at-now.example', { expiresAt: now }));
      await store.put(live[1]!);
      expect(await store.prune(now)).toBe(2);
      expect(await store.get('gone-yesterday.example')).toBeUndefined();
      expect(await store.get('gone-at-now.example')).toBeUndefined();
      for (const e of live) expect(await store.get(e.domain)).toStrictEqual(e);
      expect(await store.count()).toBe(2);
      expect(await store.prune(now)).toBe(0);
    });

    it('prune(now, limit) removes at most limit entries; the next call takes the rest', async () => {
      const now = Date.now();
      for (let i = 0; i < 7; i++) await store.put(makeEntry(`gone-${i}.example`, { expiresAt: now - 1_000 * (i + 1) }));
      await store.put(makeEntry('live.example', { expiresAt: now + 3_600_000 }));
      await store.flush();
      expect(await store.prune(now, 3)).toBe(3);
      expect(await store.count()).toBe(5);
      expect(await store.prune(now)).toBe(4);
      expect((await collect(store)).map((e) => e.domain)).toEqual(['live.example']);
    });

    it('prune() of a store where nothing has expired removes nothing', async () => {
      const now = Date.now();
      for (let i = 0; i < 20; i++) await store.put(makeEntry(`d${i}.example`, { expiresAt: now + 60_000 * (i + 1) }));
      expect(await store.prune(now)).toBe(0);
      expect(await store.count()).toBe(20);
    });

    // Stores without `reopen` (memory) check the same data on the store itself.
    it('durability: after flush(), close() and reopen, every write and delete is there', async () => {
      const entries = Array.from({ length: 50 }, (_, i) => makeEntry(`keep-${i}.example`, { failures: i }));
      for (const e of entries) await store.put(e);
      await store.put(makeEntry('gone.example'));
      await store.flush();
      expect(await store.delete('gone.example')).toBe(true);
      await store.put(makeEntry('keep-0.example', { id: 'rewritten' }));
      await store.flush();
      entries[0] = makeEntry('keep-0.example', { id: 'rewritten' });

      let check = store;
      if (sut.reopen) {
        await store.close();
        check = await sut.reopen();
        opened.push(check);
      }
      expect(await check.count()).toBe(50);
      expect(await check.get('gone.example')).toBeUndefined();
      for (const e of entries) expect(await check.get(e.domain)).toStrictEqual(e);
      expect(await collect(check)).toStrictEqual([...entries].sort((a, b) => (a.domain < b.domain ? -1 : 1)));
    });

    // The fleet lease (store.ts): only stores shared by several daemons have it.
    if (!options.leases) {
      it('has no fleet lease (not a store several daemons share)', () => {
        expect([store.tryLease, store.releaseLease]).toEqual([undefined, undefined]);
      });
    }
    // A store several daemons share gets writes out of order (a late re-check of another daemon).
    if (options.leases) {
      it('keeps the newer of two writes: a larger fetchedAt wins, then a larger id; an equal pair is an update', async () => {
        const newer = makeEntry('example.com', { fetchedAt: 2_000, id: 'b' });
        await store.put(newer);
        // Rule: an older fetch (another daemon's, arriving late) never replaces a newer one.
        await store.put(makeEntry('example.com', { fetchedAt: 1_000, id: 'z' }));
        expect(await store.get('example.com')).toStrictEqual(newer);
        // Rule: same fetch time, smaller id: older.
        await store.put(makeEntry('example.com', { fetchedAt: 2_000, id: 'a' }));
        expect(await store.get('example.com')).toStrictEqual(newer);
        // Rule: the same fetch (fetchedAt and id equal) carries bookkeeping (checkedAt, failures): written.
        const checked = { ...newer, checkedAt: newer.checkedAt + 60_000, failures: 0, lastError: null };
        await store.put(checked);
        expect(await store.get('example.com')).toStrictEqual(checked);
        // Rule: a later fetch replaces it.
        const later = makeEntry('example.com', { fetchedAt: 3_000, id: 'a' });
        await store.put(later);
        expect(await store.get('example.com')).toStrictEqual(later);
      });
    }
    if (options.leases) describe('fleet lease (tryLease/releaseLease)', () => {
      /** A lease key no other test (or earlier run against the same server) uses. */
      const fresh = (what: string) => `${what}:${randomUUID()}`;
      const leasing = () => {
        expect(store.tryLease).toBeTypeOf('function');
        expect(store.releaseLease).toBeTypeOf('function');
        return store as Required<Pick<PolicyStore, 'tryLease' | 'releaseLease'>> & PolicyStore;
      };
      /** A second daemon on the same backend (reopen), or the same store where there is none. */
      const second = async (): Promise<PolicyStore> => {
        if (!sut.reopen) return store;
        const other = await sut.reopen();
        opened.push(other);
        return other;
      };

      it('has both methods or neither', () => {
        expect(store.tryLease === undefined).toBe(store.releaseLease === undefined);
      });

      it('the first owner gets the lease, another owner does not, a different key is independent', async () => {
        const s = leasing();
        const key = fresh('resolve:example.com');
        expect(await s.tryLease(key, 'daemon-a', 10_000)).toBe(true);
        expect(await s.tryLease(key, 'daemon-b', 10_000)).toBe(false);
        expect(await s.tryLease(fresh('refresh:example.com'), 'daemon-b', 10_000)).toBe(true);
      });

      it('the holder asking again keeps (renews) it', async () => {
        const s = leasing();
        const key = fresh('refresh:example.com');
        expect(await s.tryLease(key, 'daemon-a', 300)).toBe(true);
        expect(await s.tryLease(key, 'daemon-a', 10_000)).toBe(true);
        await sleep(500); // past the first ttl: the renewal holds
        expect(await s.tryLease(key, 'daemon-b', 10_000)).toBe(false);
      });

      it("a lease lapses by itself after its ttl (a crashed holder's lease)", async () => {
        const s = leasing();
        const key = fresh('resolve:example.com');
        expect(await s.tryLease(key, 'crashed', 200)).toBe(true);
        expect(await s.tryLease(key, 'daemon-b', 10_000)).toBe(false);
        await sleep(400);
        expect(await s.tryLease(key, 'daemon-b', 10_000)).toBe(true);
      });

      it('release is compare-and-delete: only the holder frees it; releasing what nobody holds resolves', async () => {
        const s = leasing();
        const key = fresh('resolve:example.com');
        expect(await s.tryLease(key, 'daemon-a', 10_000)).toBe(true);
        await s.releaseLease(key, 'daemon-b');
        expect(await s.tryLease(key, 'daemon-b', 10_000)).toBe(false);
        await s.releaseLease(key, 'daemon-a');
        expect(await s.tryLease(key, 'daemon-b', 10_000)).toBe(true);
        await expect(s.releaseLease(fresh('never-taken'), 'daemon-a')).resolves.toBeUndefined();
      });

      it('20 owners racing from two connections: exactly one wins', async () => {
        const s = leasing();
        const other = (await second()) as typeof s;
        const key = fresh('resolve:race.example');
        const wins = await Promise.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 ? other : s).tryLease(key, `daemon-${i}`, 10_000)),
        );
        expect(wins.filter(Boolean)).toHaveLength(1);
      });

      it('leases are not policies: count() and list() do not see them', async () => {
        const s = leasing();
        await s.put(makeEntry('example.com'));
        expect(await s.tryLease(fresh('resolve:example.com'), 'daemon-a', 10_000)).toBe(true);
        expect(await s.count()).toBe(1);
        expect((await collect(s)).map((e) => e.domain)).toEqual(['example.com']);
      });

      it('after close(), tryLease rejects and releaseLease still resolves', async () => {
        const s = leasing();
        const key = fresh('resolve:example.com');
        await s.close();
        await expect(s.tryLease(key, 'daemon-a', 10_000)).rejects.toThrow();
        await expect(s.releaseLease(key, 'daemon-a')).resolves.toBeUndefined();
      });
    });
  });
}
