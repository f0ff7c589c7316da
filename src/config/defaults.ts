/**
 * Defaults: those of the config keys come from src/config/schema.ts (declared there once, with the
 * key); the rest are internal tunables of the stores that the config file does not offer, explained
 * here. RFC 8461's values live in src/sts/rfc8461.ts, Postfix's in src/config/limits.ts. Units are in the names.
 */
import { currentRuntime } from './cache-path.js';
import { defaultConfig, type Config } from './schema.js';

export { SOCKETMAP } from './limits.js';

/** Store tunables that are not config keys (docs/decisions.md explains the values). */
const STORE_TUNABLES = {
  /** SQLite: queued writes are committed in one transaction at most this long after the first one. */
  sqlite_flush_interval_ms: 50,
  /** SQLite: ... or at once when this many domains are queued. */
  sqlite_flush_max_entries: 500,
  /**
   * SQLite: how long a write waits on another process's lock (e.g. `cache` CLI) before that flush is
   * retried at the next interval. better-sqlite3 is synchronous, so this blocks the event loop: keep it small.
   */
  sqlite_busy_timeout_ms: 100,
  /** SQLite: after a failed write, the queued writes are retried this much later (and kept meanwhile). */
  sqlite_flush_retry_ms: 1_000,
  /** Redis: every key is namespaced; `<prefix><domain>` holds the JSON entry. */
  redis_key_prefix: 'mta-sts-sidecar:policy:',
  /** Redis: fleet leases (PolicyStore.tryLease) live apart from the policies: `<prefix><lease key>`. */
  redis_lease_prefix: 'mta-sts-sidecar:lease:',
  /** Redis: a key's TTL is (expiresAt - now) plus this, so Redis drops dead policies by itself. */
  redis_ttl_slack_ms: 60 * 60_000,
  /** Redis: TCP connect + handshake deadline. */
  redis_connect_timeout_ms: 1_000,
  /** Redis: a command without a reply by then is rejected (the resolver treats that as a miss). */
  redis_command_timeout_ms: 500,
  /** Redis: reconnect backoff doubles from the first value up to the second. */
  redis_reconnect_min_delay_ms: 50,
  redis_reconnect_max_delay_ms: 2_000,
  /** Redis: at start-up, wait at most this long for the first connection (then run without, reconnecting). */
  redis_open_wait_ms: 2_000,
  /** Redis: SCAN COUNT hint per round trip for list() and count(). */
  redis_scan_count: 500,
  /** Redis: a SCAN that has not reached the end after this many round trips is abandoned with an error. */
  redis_scan_max_rounds: 1_000_000,
  /** PostgreSQL: our tables live in this schema (namespace), created if missing. */
  postgres_schema: 'mta_sts_sidecar',
  /** PostgreSQL: TCP connect + login deadline (also the wait for a free pooled connection). */
  postgres_connect_timeout_ms: 1_000,
  /** PostgreSQL: a query without a reply by then is rejected (client side) or cancelled (server side). */
  postgres_query_timeout_ms: 1_000,
  /** PostgreSQL: an idle pooled connection is closed after this. */
  postgres_idle_timeout_ms: 30_000,
  /** PostgreSQL: rows per list() round trip. */
  postgres_list_batch: 500,
} as const;

const { zones, ...configDefaults } = defaultConfig(currentRuntime());

/**
 * Every default by section, as code outside src/config reads them (`DEFAULTS.exim.max_connections`):
 * the schema's defaults (the cache path where this process runs), the cache section with the store
 * tunables, and `zone` for the settings of a zone.
 */
export const DEFAULTS: Readonly<Omit<Config, 'zones' | 'cache'>> & {
  readonly cache: Readonly<Config['cache']> & typeof STORE_TUNABLES;
  readonly zone: Readonly<Config['zones'][string]>;
} = {
  ...configDefaults,
  cache: { ...configDefaults.cache, ...STORE_TUNABLES },
  zone: zones.default!,
};
