/**
 * The byte bound shared by the stores that hold their own bytes (memory, sqlite; Redis is bounded by its
 * TTLs, prune() and its own maxmemory): never over `cache.store_max_bytes` once a write has landed, and
 * the entries evicted to stay under it are the ones closest to expiry (src/cache/evict.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CacheEntry, PolicyStore } from '../../src/cache/store.js';
import { makeEntry } from './store-contract.js';

export interface BoundedStore {
  store: PolicyStore;
  /** What the store counts against its bound, now. */
  bytes(): number;
}

/** A policy body of about `size` bytes of `mx` lines (the shape that costs the most memory per byte). */
export function bigPolicyEntry(domain: string, size: number, overrides: Partial<CacheEntry> = {}): CacheEntry {
  const mx: string[] = [];
  let text = 'version: STSv1\nmode: enforce\n';
  for (let i = 0; text.length < size - 40; i++) {
    const host = `mx${i}.${domain}`;
    mx.push(host);
    text += `mx: ${host}\n`;
  }
  text += 'max_age: 604800\n';
  const base = makeEntry(domain, overrides);
  return {
    ...base,
    text,
    policy: { ...base.policy, mx: mx.map((d) => ({ wildcard: false, domain: d })), extensions: [] },
    ...overrides,
  };
}

export function describeByteBound(name: string, open: (maxBytes: number) => Promise<BoundedStore>): void {
  describe(`${name}: bounded in bytes (cache.store_max_bytes)`, () => {
    const opened: PolicyStore[] = [];
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it('never holds more than its bound after a write lands; what it evicts expires no later than anything it keeps', async () => {
      const maxBytes = 2 * 1024 * 1024;
      const sut = await open(maxBytes);
      opened.push(sut.store);
      const now = Date.now();
      // 60 entries of ~60 KB (far more than 2 MiB), written in an expiry order unrelated to the write order.
      const expiries = Array.from({ length: 60 }, (_, i) => now + 3_600_000 + ((i * 37) % 60) * 60_000);
      const expiryOf = (domain: string) => expiries[Number(/^d(\d+)\./.exec(domain)![1])]!;
      let before = new Set<string>();
      let evictions = 0;
      for (const [i, expiresAt] of expiries.entries()) {
        const domain = `d${i}.example`;
        await sut.store.put(bigPolicyEntry(domain, 60_000, { expiresAt }));
        await sut.store.flush();
        expect(sut.bytes(), `after write ${i}`).toBeLessThanOrEqual(maxBytes);
        const after = new Set<string>();
        for await (const e of sut.store.list()) after.add(e.domain);
        const evicted = [...before, domain].filter((d) => !after.has(d));
        if (evicted.length > 0) {
          evictions++;
          const latestEvicted = Math.max(...evicted.map(expiryOf));
          const soonestKept = Math.min(...[...after].map(expiryOf));
          expect(latestEvicted, `write ${i}: evicted ${evicted.join(' ')}`).toBeLessThanOrEqual(soonestKept);
        }
        before = after;
      }
      expect(evictions).toBeGreaterThan(0);
      expect(before.size).toBeGreaterThan(0);
    });

    it('a write that leaves the bound untouched evicts nothing', async () => {
      const sut = await open(16 * 1024 * 1024);
      opened.push(sut.store);
      const now = Date.now();
      for (let i = 0; i < 20; i++) await sut.store.put(bigPolicyEntry(`d${i}.example`, 60_000, { expiresAt: now + 60_000 * (i + 1) }));
      await sut.store.flush();
      expect(await sut.store.count()).toBe(20);
    });
  });
}
