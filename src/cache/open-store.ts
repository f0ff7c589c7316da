/**
 * The one place that turns `cache.*` config values into a PolicyStore, so the CLI and the daemon open
 * stores the same way.
 */
import { readCaFile, readPasswordFile } from '../config/key-file.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { MemoryStore } from './memory-store.js';
import type { PolicyStore, StoreKind, StoreLogger } from './store.js';

/** The `cache.*` keys that choose and open a store. */
export interface StoreConfig {
  store: StoreKind;
  /** SQLite file; its directory is created if missing. Used when store is `sqlite`. */
  path: string;
  /** `redis://[user:password@]host[:port][/db]` (or `rediss://`). Used when store is `redis`. */
  redisUrl: string;
  /** `cache.redis_password_file`: read when the store is opened; overrides a password in redisUrl. */
  redisPasswordFile?: string | null;
  /** `cache.redis_tls_ca_file`: PEM read when the store is opened; for `rediss://`. */
  redisTlsCaFile?: string | null;
  /** `cache.redis_sentinels` (HOST:PORT): non-empty means Sentinel mode, asking for `redisMasterName`. */
  redisSentinels?: readonly string[];
  redisMasterName?: string;
  /** `cache.redis_sentinel_password_file`: the Sentinels' own password, if they require one. */
  redisSentinelPasswordFile?: string | null;
  /** `cache.redis_cluster_nodes` (HOST:PORT): non-empty means Redis Cluster. */
  redisClusterNodes?: readonly string[];
  /** `postgres://...`. Used when store is `postgres`. */
  postgresUrl?: string;
  /** `cache.postgres_password_file`: read when the store is opened; overrides a password in postgresUrl. */
  postgresPasswordFile?: string | null;
  /** `cache.postgres_pool_max`. */
  postgresPoolMax?: number;
  /**
   * Byte bound of the memory and sqlite stores (Redis is bounded by TTLs, prune() and its own maxmemory).
   * Default DEFAULTS.cache.store_max_bytes.
   */
  maxBytes?: number;
}

/** The StoreConfig of a validated config: one mapping for the daemon and the CLI. */
export function storeConfigOf(config: Config): StoreConfig {
  const c = config.cache;
  return {
    store: c.store,
    path: c.path,
    redisUrl: c.redis_url,
    redisPasswordFile: c.redis_password_file,
    redisTlsCaFile: c.redis_tls_ca_file,
    redisSentinels: c.redis_sentinels,
    redisMasterName: c.redis_master_name,
    redisSentinelPasswordFile: c.redis_sentinel_password_file,
    redisClusterNodes: c.redis_cluster_nodes,
    postgresUrl: c.postgres_url,
    postgresPasswordFile: c.postgres_password_file,
    postgresPoolMax: c.postgres_pool_max,
    maxBytes: c.store_max_bytes,
  };
}

/**
 * Open the configured store. SQLite opens synchronously and fails only on an unusable path or a schema
 * newer than this version knows (a corrupt file is moved aside instead). Redis and PostgreSQL wait a
 * bounded time for their first connection, then resolve either way: an unreachable shared store means
 * cache misses, not a dead daemon. An unreadable password file, or a PostgreSQL schema newer than ours,
 * rejects.
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
      return RedisStore.open({
        url: config.redisUrl,
        logger,
        password: config.redisPasswordFile ? readPasswordFile(config.redisPasswordFile, 'cache.redis_password_file') : undefined,
        tlsCa: config.redisTlsCaFile ? readCaFile(config.redisTlsCaFile, 'cache.redis_tls_ca_file') : undefined,
        sentinels: config.redisSentinels,
        masterName: config.redisMasterName,
        sentinelPassword: config.redisSentinelPasswordFile
          ? readPasswordFile(config.redisSentinelPasswordFile, 'cache.redis_sentinel_password_file')
          : undefined,
        clusterNodes: config.redisClusterNodes,
      });
    }
    case 'postgres': {
      const { PostgresStore } = await import('./postgres-store.js');
      if (config.postgresUrl === undefined) throw new ConfigError('cache.postgres_url', 'is required for store: postgres');
      return PostgresStore.open({
        url: config.postgresUrl,
        logger,
        password: config.postgresPasswordFile ? readPasswordFile(config.postgresPasswordFile, 'cache.postgres_password_file') : undefined,
        poolMax: config.postgresPoolMax,
      });
    }
    default:
      throw new ConfigError('cache.store', `must be one of sqlite, memory, redis, postgres (got ${JSON.stringify(kind)})`);
  }
}
