/**
 * The one place that turns `cache.*` config values into a PolicyStore, so the CLI and the daemon open
 * stores the same way.
 */
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { MemoryStore } from './memory-store.js';
import type { PolicyStore, StoreKind, StoreLogger } from './store.js';

/** `cache.store`, `cache.path`, `cache.redis_url`, `cache.store_max_bytes`. */
export interface StoreConfig {
  store: StoreKind;
  /** SQLite file; its directory is created if missing. Used when store is `sqlite`. */
  path: string;
  /** `redis://[user:password@]host[:port][/db]` (or `rediss://`). Used when store is `redis`. */
  redisUrl: string;
  /**
   * Byte bound of the memory and sqlite stores (Redis is bounded by TTLs, prune() and its own maxmemory).
   * Default DEFAULTS.cache.store_max_bytes.
   */
  maxBytes?: number;
}

/** The StoreConfig of a validated config: one mapping for the daemon and the CLI. */
export function storeConfigOf(config: Config): StoreConfig {
  const c = config.cache;
  return { store: c.store, path: c.path, redisUrl: c.redis_url, maxBytes: c.store_max_bytes };
}

/**
 * Open the configured store. SQLite opens synchronously and fails only on an unusable path or a schema
 * newer than this version knows (a corrupt file is moved aside instead). Redis waits a bounded time for its
 * first connection, then resolves either way: an unreachable Redis means cache misses, not a dead daemon.
 */
export async function openStore(config: StoreConfig, logger: StoreLogger): Promise<PolicyStore> {
  const kind: string = config.store;
  switch (config.store) {
    case 'memory':
      return new MemoryStore({ maxBytes: config.maxBytes });
    // Each store's client is imported only when configured: ioredis alone is about 19 MiB of RSS and
    // better-sqlite3 about 5 (BENCHMARKS.md, "Footprint"), and most daemons use one store.
    case 'sqlite': {
      const { SqliteStore } = await import('./sqlite-store.js');
      return new SqliteStore({ path: config.path, logger, maxBytes: config.maxBytes });
    }
    case 'redis': {
      const { RedisStore } = await import('./redis-store.js');
      return RedisStore.open({ url: config.redisUrl, logger });
    }
    default:
      throw new ConfigError('cache.store', `must be one of sqlite, memory, redis (got ${JSON.stringify(kind)})`);
  }
}
