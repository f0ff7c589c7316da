import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/cache/memory-store.js';
import { openStore } from '../../src/cache/open-store.js';
import { describeCacheStore, makeEntry } from './store-contract.js';
import { describeByteBound } from './byte-bound.js';

describeCacheStore('MemoryStore', async () => ({ store: new MemoryStore() }));

describe('MemoryStore', () => {
  it('is what openStore() returns for store: memory', async () => {
    const logs: unknown[] = [];
    const log = (obj: object, msg?: string): void => void logs.push([obj, msg]);
    const config = { store: 'memory', path: '/nonexistent/never-created.db', redisUrl: 'redis://127.0.0.1:1/0' } as const;
    const store = await openStore(config, { info: log, warn: log, error: log });
    try {
      expect(store).toBeInstanceOf(MemoryStore);
      expect(store.kind).toBe('memory');
      await store.put(makeEntry('example.com'));
      expect(await store.count()).toBe(1);
      expect(logs).toEqual([]);
      expect(existsSync('/nonexistent')).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('openStore() refuses an unknown store kind, naming the config key', async () => {
    const log = (): void => {};
    await expect(
      openStore({ store: 'mysql' as never, path: '', redisUrl: '' }, { info: log, warn: log, error: log }),
    ).rejects.toThrow(/^cache\.store: must be one of sqlite, memory, redis, postgres/);
  });

  it('keeps nothing across instances', async () => {
    const a = new MemoryStore();
    await a.put(makeEntry('example.com'));
    await a.close();
    const b = new MemoryStore();
    expect(await b.get('example.com')).toBeUndefined();
    await b.close();
  });
});

describeByteBound('MemoryStore', async (maxBytes) => {
  const store = new MemoryStore({ maxBytes });
  return { store, bytes: () => store.bytes };
});
