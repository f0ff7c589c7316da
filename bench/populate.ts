/**
 * Fills a sqlite cache file with `count` policies for p0.bench.test ... p<count-1>.bench.test, through the
 * daemon's own SqliteStore (so the rows are exactly what the daemon writes and reads). Each domain gets a
 * realistic, distinct policy (its own MX names, ~110 bytes of text), fetched and checked "now", valid for
 * a week, so that no background re-check or refresh starts during a bench run.
 *
 * This is how scenarios 2 and 4 get 100k / 1M policies: the daemon then loads them at start exactly as
 * it would after a restart (warmFromStore), with no bench-only code in src/.
 */
import { existsSync, statSync } from 'node:fs';
import { SqliteStore } from '../src/cache/sqlite-store.js';
import type { CacheEntry } from '../src/cache/store.js';
import { parsePolicy } from '../src/sts/policy.js';
import { policyText, storedDomain } from './world.js';

const MAX_AGE_S = 604_800;
const BATCH = 20_000;

export async function populateStore(path: string, count: number): Promise<{ seconds: number; bytes: number }> {
  const started = performance.now();
  // The store's byte bound (cache.store_max_bytes, 256 MiB by default) would evict past about 600k bench
  // policies: as much room as the daemon is given (bench/procs.ts, memoryEntries).
  const store = new SqliteStore({ path, flushMaxEntries: BATCH, flushIntervalMs: 60_000, maxBytes: Math.max(256 * 1024 * 1024, count * 2048) });
  const now = Date.now();
  try {
    for (let n = 0; n < count; n++) {
      const domain = storedDomain(n);
      const text = policyText(domain, MAX_AGE_S);
      const entry: CacheEntry = {
        domain,
        id: `bench${n % 1000}`,
        policy: parsePolicy(text),
        text,
        fetchedAt: now,
        expiresAt: now + MAX_AGE_S * 1000,
        checkedAt: now,
        lastError: null,
        failures: 0,
      };
      await store.put(entry);
    }
    await store.flush();
  } finally {
    await store.close();
  }
  const bytes = existsSync(path) ? statSync(path).size : 0;
  return { seconds: (performance.now() - started) / 1000, bytes };
}
