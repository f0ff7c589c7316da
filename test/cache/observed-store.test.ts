import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/cache/memory-store.js';
import { observeStore, type StoreOperation } from '../../src/cache/observed-store.js';
import type { PolicyStore } from '../../src/cache/store.js';
import { describeCacheStore, makeEntry } from './store-contract.js';

type Seen = Array<[string, StoreOperation, boolean]>;

function recorder(): { seen: Seen; observer: { storeOperation(kind: string, op: StoreOperation, ms: number, ok: boolean): void } } {
  const seen: Seen = [];
  return {
    seen,
    observer: {
      storeOperation(kind, op, ms, ok) {
        expect(ms).toBeGreaterThanOrEqual(0);
        seen.push([kind, op, ok]);
      },
    },
  };
}

// The wrapper is itself a PolicyStore: the whole contract holds through it.
describeCacheStore('observeStore(MemoryStore)', async () => ({ store: observeStore(new MemoryStore(), recorder().observer) }));

describe('observeStore', () => {
  it('reports each call once with its outcome, a rejected call as not ok', async () => {
    const { seen, observer } = recorder();
    const store = observeStore(new MemoryStore(), observer);
    await store.put(makeEntry('example.com'));
    await store.get('example.com');
    for await (const _ of store.list()) break; // an early stop is not a failure
    await store.count();
    await store.prune(Date.now());
    await store.delete('example.com');
    await store.flush();
    await store.close();
    await expect(store.get('example.com')).rejects.toThrow();
    expect(seen).toEqual([
      ['memory', 'put', true],
      ['memory', 'get', true],
      ['memory', 'list', true],
      ['memory', 'count', true],
      ['memory', 'prune', true],
      ['memory', 'delete', true],
      ['memory', 'flush', true],
      ['memory', 'get', false],
    ]);
  });

  it('keeps the lease methods exactly when the inner store has them', async () => {
    const { seen, observer } = recorder();
    expect(observeStore(new MemoryStore(), observer).tryLease).toBeUndefined();
    const holders = new Map<string, string>();
    const leasing: PolicyStore = Object.assign(new MemoryStore(), {
      async tryLease(key: string, owner: string) {
        if (key === 'unreachable') throw new Error('backend down');
        if (holders.has(key) && holders.get(key) !== owner) return false;
        holders.set(key, owner);
        return true;
      },
      async releaseLease(key: string, owner: string) {
        if (holders.get(key) === owner) holders.delete(key);
      },
    });
    const store = observeStore(leasing, observer);
    expect(await store.tryLease!('resolve:a', 'x', 1_000)).toBe(true);
    expect(await store.tryLease!('resolve:a', 'y', 1_000)).toBe(false);
    await expect(store.tryLease!('unreachable', 'y', 1_000)).rejects.toThrow('backend down');
    await store.releaseLease!('resolve:a', 'x');
    expect(seen).toEqual([
      ['memory', 'lease', true],
      ['memory', 'lease', true],
      ['memory', 'lease', false],
      ['memory', 'release', true],
    ]);
  });
});
