/**
 * A PolicyStore in Redis, shared by a fleet of daemons.
 *
 * - One string key per domain, `<prefix><domain>`, holding the entry as JSON. Each key carries a TTL of
 *   (expiresAt - now) + DEFAULTS.cache.redis_ttl_slack_ms, so Redis forgets dead policies by itself.
 *   A write never replaces a later fetch with an earlier one (a Lua compare-and-set on fetchedAt, then id).
 * - An outage must cost cache misses, never a hang or a crash: no offline queue (a command while
 *   disconnected rejects at once), a short connect timeout, a per-command timeout, one retry per request,
 *   and reconnection with capped exponential backoff for ever. The outage is logged once when it starts
 *   (warn) and once when it ends (info, with the number of writes lost meanwhile), not per command; a
 *   write that fails while the connection looks fine (a command timeout) starts such a run too. 'error'
 *   events are always handled.
 * - prune() finds expired entries without reading every one: a key's remaining TTL is (expiresAt - wall
 *   clock) + slack, so a key with more than slack + max(0, now - wall clock) left cannot be expired by
 *   `now`. A Lua script checks the others on the server, comparing the stored expiresAt to `now`, and
 *   deletes those past it, so a key another daemon has just rewritten is kept.
 *   Bytes in Redis are governed by these TTLs, prune() and Redis's own `maxmemory`.
 * - Fleet leases (tryLease/releaseLease) are keys `<lease prefix><key>` holding the owner, set with
 *   `NX PX` so they lapse by themselves; the holder may renew its own, and release is compare-and-delete
 *   in Lua. Each is one key, so it works unchanged on Redis Cluster.
 */
import { Cluster, type Redis } from 'ioredis';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../errors.js';
import { decodeEntry } from './entry-json.js';
import { leaseTtl } from './lease.js';
import { connectRedis, type RedisClient, type RedisConnectOptions } from './redis-connect.js';
import type { StoreLogger } from './store.js';
import { PRUNE_LIMIT, type CacheEntry, type PolicyStore } from './store.js';

/** How the client connects (src/cache/redis-connect.ts), as the config names it. */
type RedisEndpoints = Pick<RedisConnectOptions, 'password' | 'tlsCa' | 'sentinels' | 'masterName' | 'sentinelPassword' | 'clusterNodes'>;

export interface RedisStoreOptions extends RedisEndpoints {
  /**
   * `redis://[user:password@]host[:port][/db]` or `rediss://...` for TLS. With sentinels or clusterNodes
   * only its user, password, database and scheme are used (src/cache/redis-connect.ts).
   */
  url: string;
  logger?: StoreLogger;
  /** Default DEFAULTS.cache.redis_key_prefix. */
  keyPrefix?: string;
  /** Default DEFAULTS.cache.redis_lease_prefix. */
  leasePrefix?: string;
  /** Default DEFAULTS.cache.redis_ttl_slack_ms. */
  ttlSlackMs?: number;
  /** Default DEFAULTS.cache.redis_connect_timeout_ms. */
  connectTimeoutMs?: number;
  /** Default DEFAULTS.cache.redis_command_timeout_ms. */
  commandTimeoutMs?: number;
  /** Defaults DEFAULTS.cache.redis_reconnect_min_delay_ms / redis_reconnect_max_delay_ms. */
  reconnectMinDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Default DEFAULTS.cache.redis_scan_count. */
  scanCount?: number;
  /** Default DEFAULTS.cache.redis_scan_max_rounds. */
  scanMaxRounds?: number;
}

const SILENT: StoreLogger = { info() {}, warn() {}, error() {} };

/**
 * KEYS: keys to consider; ARGV[1]: now (ms); ARGV[2]: the TTL threshold (ms). Deletes each key whose
 * remaining TTL is at most the threshold and whose stored expiresAt <= now; returns how many. Only those
 * within the threshold are decoded, so a prune of live entries costs one PTTL per key.
 */
const PRUNE_SCRIPT = `
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local removed = 0
for _, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl <= threshold then
    local json = redis.call('GET', key)
    if json then
      local ok, entry = pcall(cjson.decode, json)
      if ok and type(entry) == 'table' and type(entry.expiresAt) == 'number' and entry.expiresAt <= now then
        removed = removed + redis.call('DEL', key)
      end
    end
  end
end
return removed
`;

/**
 * KEYS[1]: the policy key; ARGV: JSON, TTL (ms), fetchedAt, id. Writes unless the stored entry is a
 * later fetch (larger fetchedAt, then larger id): several daemons write the same domain, and one whose
 * copy is older (a re-check of the policy another daemon has just replaced) must not undo the newer
 * write. 1 when written, 0 when kept. An unreadable stored value is replaced.
 */
const PUT_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and type(entry.fetchedAt) == 'number' and type(entry.id) == 'string' then
    local fetchedAt = tonumber(ARGV[3])
    if entry.fetchedAt > fetchedAt or (entry.fetchedAt == fetchedAt and entry.id > ARGV[4]) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/**
 * KEYS[1]: the lease key; ARGV[1]: owner; ARGV[2]: ttl (ms). Takes a free lease, or renews one the owner
 * already holds; 1 when the owner holds it afterwards, 0 when someone else does.
 */
const LEASE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** KEYS[1]: the lease key; ARGV[1]: owner. Deletes the key only while it still names this owner. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export class RedisStore implements PolicyStore {
  readonly kind = 'redis';
  readonly keyPrefix: string;
  readonly leasePrefix: string;
  readonly #client: RedisClient;
  readonly #logger: StoreLogger;
  /** The URL with any password masked, for logs. */
  #where: string;
  readonly #ttlSlackMs: number;
  readonly #scanCount: number;
  readonly #scanMaxRounds: number;
  /** True from the first connection (or write) failure until the next successful connection (or write). */
  #down = false;
  /** Writes that failed during the current outage, reported when it ends. */
  #lostWrites = 0;
  #closing = false;

  /**
   * Starts connecting in the background and returns at once; until the first connection is ready every
   * command rejects. Use RedisStore.open() to wait (bounded) for that first connection.
   */
  constructor(options: RedisStoreOptions) {
    const url = parseRedisUrl(options.url);
    this.#where = maskPassword(url);
    this.#logger = options.logger ?? SILENT;
    this.keyPrefix = options.keyPrefix ?? DEFAULTS.cache.redis_key_prefix;
    this.leasePrefix = options.leasePrefix ?? DEFAULTS.cache.redis_lease_prefix;
    this.#ttlSlackMs = options.ttlSlackMs ?? DEFAULTS.cache.redis_ttl_slack_ms;
    this.#scanCount = options.scanCount ?? DEFAULTS.cache.redis_scan_count;
    this.#scanMaxRounds = options.scanMaxRounds ?? DEFAULTS.cache.redis_scan_max_rounds;
    const minDelayMs = options.reconnectMinDelayMs ?? DEFAULTS.cache.redis_reconnect_min_delay_ms;
    const maxDelayMs = options.reconnectMaxDelayMs ?? DEFAULTS.cache.redis_reconnect_max_delay_ms;

    const { password, tlsCa, sentinels, masterName, sentinelPassword, clusterNodes } = options;
    this.#client = connectRedis({
      url,
      password,
      tlsCa,
      sentinels,
      masterName,
      sentinelPassword,
      clusterNodes,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.cache.redis_connect_timeout_ms,
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULTS.cache.redis_command_timeout_ms,
      reconnectMinDelayMs: minDelayMs,
      reconnectMaxDelayMs: maxDelayMs,
    });
    if (sentinels?.length) this.#where += ` (sentinels ${sentinels.join(',')}, primary ${masterName ?? DEFAULTS.cache.redis_master_name})`;
    if (clusterNodes?.length) this.#where += ` (cluster ${clusterNodes.join(',')})`;
    this.#client.on('error', (err: Error) => this.#markDown(err.message));
    // Cluster: one node's trouble is reported per call (its keys miss), not as an outage of the whole.
    if (this.#client instanceof Cluster) this.#client.on('node error', () => {});
    this.#client.on('close', () => this.#markDown('connection closed'));
    this.#client.on('ready', () => this.#markUp());
  }

  /** Construct, then wait up to `waitMs` for the first connection; resolves either way (see the log). */
  static async open(options: RedisStoreOptions & { waitMs?: number }): Promise<RedisStore> {
    const store = new RedisStore(options);
    await store.waitUntilReady(options.waitMs ?? DEFAULTS.cache.redis_open_wait_ms);
    return store;
  }

  /** True once connected and ready, false if that did not happen within `timeoutMs`. */
  async waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.#client.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const done = (ready: boolean): void => {
        clearTimeout(timer);
        this.#client.off('ready', onReady);
        resolve(ready);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#client.on('ready', onReady);
    });
  }

  async get(domain: string): Promise<CacheEntry | undefined> {
    const json = await this.#client.get(this.#key(domain));
    // A write run of failures (command timeouts) with the connection up ends at the first answer.
    if (this.#down && this.#client.status === 'ready') this.#markUp();
    if (json === null) return undefined;
    const entry = decodeEntry(json);
    if (entry?.domain !== domain) throw new Error(`redis cache: malformed entry at key ${this.#key(domain)}`);
    return entry;
  }

  /**
   * Written straight through (Redis is fast and remote); rejects while Redis is unreachable. A failed write
   * is counted for the outage's end line instead of being logged on its own. An entry older than the
   * stored one (fetchedAt, then id) is not written, and resolves all the same (PUT_SCRIPT).
   */
  async put(entry: CacheEntry): Promise<void> {
    const ttlMs = Math.max(0, Math.ceil(entry.expiresAt - Date.now())) + this.#ttlSlackMs;
    try {
      await this.#client.eval(PUT_SCRIPT, 1, this.#key(entry.domain), JSON.stringify(entry), Math.max(1, ttlMs), entry.fetchedAt, entry.id);
    } catch (err) {
      // A cluster with one node lost fails only that node's writes while the rest succeed: such
      // failures are each the caller's (and the observer's) to count, not an outage to log on and off.
      const partial = this.#client instanceof Cluster && this.#client.status === 'ready';
      if (!partial) this.#markDown((err as Error).message);
      if (!this.#closing && this.#down) this.#lostWrites++;
      throw err;
    }
    if (this.#down && this.#client.status === 'ready') this.#markUp();
  }

  async prune(now: number, limit = PRUNE_LIMIT): Promise<number> {
    let removed = 0;
    // A key whose remaining TTL exceeds this cannot be expired by `now` (see the file header).
    const threshold = this.#ttlSlackMs + Math.max(0, Math.ceil(now - Date.now()));
    for await (const [node, keys] of this.#scan()) {
      // Never more candidates per script call than may still be removed: the limit holds exactly.
      for (let i = 0; i < keys.length && removed < limit; ) {
        const batch = keys.slice(i, i + limit - removed);
        i += batch.length;
        removed += await this.#pruneBatch(node, batch, now, threshold);
      }
      if (removed >= limit) break;
    }
    return removed;
  }

  async delete(domain: string): Promise<boolean> {
    return (await this.#client.del(this.#key(domain))) > 0;
  }

  async *list(): AsyncIterable<CacheEntry> {
    const skipped: string[] = [];
    for await (const [node, keys] of this.#scan()) {
      const values = await this.#getMany(node, keys);
      for (const [i, json] of values.entries()) {
        if (json === null) continue; // expired or deleted since SCAN saw it
        const key = keys[i]!;
        const entry = decodeEntry(json);
        if (entry === undefined || this.#key(entry.domain) !== key) {
          skipped.push(key);
          continue;
        }
        yield entry;
      }
    }
    if (skipped.length > 0) {
      this.#logger.warn(
        { redis: this.#where, keys: skipped.slice(0, 10), count: skipped.length },
        'redis cache: malformed entries skipped',
      );
    }
  }

  async count(): Promise<number> {
    let n = 0;
    for await (const [, keys] of this.#scan()) n += keys.length;
    return n;
  }

  async tryLease(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const ttl = leaseTtl(ttlMs);
    return (await this.#client.eval(LEASE_SCRIPT, 1, this.leasePrefix + key, owner, ttl)) === 1;
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    try {
      await this.#client.eval(RELEASE_SCRIPT, 1, this.leasePrefix + key, owner);
    } catch {
      // Never rejects: an unreleased lease lapses by its TTL.
    }
  }

  /** Nothing is queued on our side: put() resolves only after Redis acknowledged the write. */
  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true; // silences #markDown; the 'error' listener stays so late errors are still handled
    if (this.#client.status === 'ready') {
      try {
        await this.#client.quit();
        return;
      } catch {
        // fall through: drop the connection
      }
    }
    this.#client.disconnect();
  }

  #key(domain: string): string {
    return this.keyPrefix + domain;
  }

  /**
   * The prefix's keys in batches with the server that holds them, each key once (SCAN may repeat keys
   * while Redis rehashes). A cluster is scanned node by node (its primaries).
   */
  async *#scan(): AsyncGenerator<[Redis, string[]]> {
    const pattern = escapeGlob(this.keyPrefix) + '*';
    const nodes = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client];
    if (nodes.length === 0) throw new Error('redis cache: no cluster node reachable');
    for (const node of nodes) {
      const seen = new Set<string>();
      let cursor = '0';
      let round = 0;
      for (; round < this.#scanMaxRounds; round++) {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', this.#scanCount);
        const fresh = keys.filter((k) => !seen.has(k));
        for (const k of fresh) seen.add(k);
        if (fresh.length > 0) yield [node, fresh];
        cursor = next;
        if (cursor === '0') break;
      }
      if (round >= this.#scanMaxRounds) throw new Error(`redis cache: SCAN did not finish within ${this.#scanMaxRounds} round trips`);
    }
  }

  /** Values of keys that one server holds: MGET, or in a cluster one GET each (keys span slots). */
  async #getMany(node: Redis, keys: string[]): Promise<Array<string | null>> {
    if (!(this.#client instanceof Cluster)) return node.mget(...keys);
    const results = (await node.pipeline(keys.map((k) => ['get', k])).exec()) ?? [];
    return results.map(([err, value]) => {
      if (err) throw err;
      return value as string | null;
    });
  }

  /** One script call for the batch, or in a cluster one per key (a script's keys must share a slot). */
  async #pruneBatch(node: Redis, keys: string[], now: number, threshold: number): Promise<number> {
    if (!(this.#client instanceof Cluster)) return (await node.eval(PRUNE_SCRIPT, keys.length, ...keys, now, threshold)) as number;
    const results = (await node.pipeline(keys.map((k) => ['eval', PRUNE_SCRIPT, 1, k, now, threshold])).exec()) ?? [];
    let removed = 0;
    for (const [err, n] of results) {
      if (err) throw err;
      removed += n as number;
    }
    return removed;
  }

  #markDown(why: string): void {
    if (this.#closing || this.#down) return;
    this.#down = true;
    this.#lostWrites = 0;
    this.#logger.warn(
      { redis: this.#where, err: why },
      'redis cache unreachable: lookups miss the shared cache until it is back (reconnecting)',
    );
  }

  #markUp(): void {
    if (!this.#down) return;
    this.#down = false;
    if (this.#closing) return;
    this.#logger.info({ redis: this.#where, writesLost: this.#lostWrites }, 'redis cache reachable again');
    this.#lostWrites = 0;
  }
}

function parseRedisUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('cache.redis_url', `not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError('cache.redis_url', `must start with redis:// or rediss:// (got ${url.protocol}//)`);
  }
  return url;
}

function maskPassword(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password !== '') copy.password = '***';
  return copy.href;
}

/** SCAN MATCH is a glob: make the prefix literal. */
function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
