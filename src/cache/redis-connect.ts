/**
 * The ioredis client for the three Redis deployments `cache.*` can name:
 *
 * - one server: `redis_url` as it is;
 * - Sentinel (`redis_sentinels` non-empty): the Sentinels name the primary of `redis_master_name`, and
 *   after a failover ioredis asks them again and reconnects to the promoted replica. `redis_url` gives
 *   the user, password, database and TLS (`rediss://`, for the Sentinels too); the Sentinels' own
 *   password, if any, is separate (`redis_sentinel_password_file`);
 * - Cluster (`redis_cluster_nodes` non-empty): the nodes are the starting points; ioredis learns the
 *   slot map and routes each key to its node. `redis_url` gives user, password and TLS (no database:
 *   a cluster has only database 0).
 *
 * Every form gets the same outage settings: no offline queue, a connect and a command timeout, one retry
 * per request, reconnection with capped exponential backoff for ever.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../errors.js';

export interface RedisConnectOptions {
  url: URL;
  /** Overrides a password in the URL (`cache.redis_password_file`). */
  password?: string;
  /** CA certificates (PEM) for `rediss://`; default the system's. */
  tlsCa?: string;
  sentinels?: readonly string[];
  masterName?: string;
  /** The Sentinels' own password; Sentinels often run without one while the data nodes have one. */
  sentinelPassword?: string;
  clusterNodes?: readonly string[];
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  reconnectMinDelayMs: number;
  reconnectMaxDelayMs: number;
}

export type RedisClient = Redis | Cluster;

/** `HOST:PORT` or `[v6]:PORT` as ioredis wants it. */
export function parseHostPort(s: string, key: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : 0;
  if (m === null || port < 1 || port > 65_535) throw new ConfigError(key, `must be HOST:PORT or [IPv6]:PORT, got ${JSON.stringify(s)}`);
  return { host: m[1] ?? m[2]!, port };
}

export function connectRedis(o: RedisConnectOptions): RedisClient {
  // Attempt n waits min * 2^(n-1), capped; a number (never null) means: keep trying for ever.
  const backoff = (attempt: number) => Math.min(o.reconnectMinDelayMs * 2 ** Math.min(attempt - 1, 30), o.reconnectMaxDelayMs);
  // Node names the server (SNI, certificate check) after the host of each connection: the URL's host,
  // or each Sentinel, primary and Cluster node in turn.
  const tls = o.url.protocol === 'rediss:' ? (o.tlsCa !== undefined ? { ca: o.tlsCa } : {}) : undefined;
  const username = o.url.username === '' ? undefined : decodeURIComponent(o.url.username);
  const password = o.password ?? (o.url.password === '' ? undefined : decodeURIComponent(o.url.password));
  const common: RedisOptions = {
    connectionName: 'mta-sts-sidecar',
    enableOfflineQueue: false,
    connectTimeout: o.connectTimeoutMs,
    commandTimeout: o.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    retryStrategy: backoff,
    disableClientInfo: true,
    username,
    password,
  };

  if (o.clusterNodes !== undefined && o.clusterNodes.length > 0) {
    const nodes = o.clusterNodes.map((n, i) => parseHostPort(n, `cache.redis_cluster_nodes[${i}]`));
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: backoff,
      // Reads and writes go to the primary of each slot: a replica may lag behind a refresh.
      scaleReads: 'master',
      slotsRefreshTimeout: o.connectTimeoutMs,
      retryDelayOnFailover: o.reconnectMinDelayMs,
      retryDelayOnClusterDown: o.reconnectMinDelayMs,
      redisOptions: { ...nodeOptions(common), tls },
    };
    return new Cluster(nodes, options);
  }

  if (o.sentinels !== undefined && o.sentinels.length > 0) {
    const db = databaseOf(o.url);
    return new Redis({
      ...common,
      sentinels: o.sentinels.map((n, i) => parseHostPort(n, `cache.redis_sentinels[${i}]`)),
      name: o.masterName ?? DEFAULTS.cache.redis_master_name,
      db,
      sentinelPassword: o.sentinelPassword,
      sentinelRetryStrategy: backoff,
      // Subscribe to the Sentinels' +switch-master: move to the new primary as soon as they agree.
      failoverDetector: true,
      ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    });
  }

  return new Redis(o.url.href, { ...common, ...(o.password !== undefined ? { password: o.password } : {}), ...(tls ? { tls } : {}) });
}

/** The per-node options of a cluster: the cluster itself retries and queues, not each node. */
function nodeOptions(common: RedisOptions): ClusterOptions['redisOptions'] {
  const { retryStrategy: _retry, enableOfflineQueue: _queue, ...rest } = common;
  return rest;
}

function databaseOf(url: URL): number {
  const path = url.pathname.replace(/^\//, '');
  if (path === '') return 0;
  const db = Number(path);
  if (!Number.isInteger(db) || db < 0) throw new ConfigError('cache.redis_url', `the database must be a number, got ${JSON.stringify(path)}`);
  return db;
}
