/**
 * The one place that turns `cache.*` config values into a PolicyStore, so the CLI and the daemon open
 * stores the same way.
 */
import { ConfigError } from '../errors.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { PolicyStore, StoreKind } from './store.js';

/** The subset of a pino logger the stores use (a pino Logger fits as is). */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** `cache.store`, `cache.path`, `cache.redis_url`. */
export interface StoreConfig {
  store: StoreKind;
  /** SQLite file; its directory is created if missing. Used when store is `sqlite`. */
  path: string;
  /** `redis://[user:password@]host[:port][/db]` (or `rediss://`). Used when store is `redis`. */
  redisUrl: string;
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
      return new MemoryStore();
    case 'sqlite':
      return new SqliteStore({ path: config.path, logger });
    case 'redis':
      return RedisStore.open({ url: config.redisUrl, logger });
    default:
      throw new ConfigError('cache.store', `must be one of sqlite, memory, redis (got ${JSON.stringify(kind)})`);
  }
}
