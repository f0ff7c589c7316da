/**
 * Redis with Sentinel on 127.0.0.1: a primary, one replica of it, and one Sentinel watching them (quorum
 * 1: a single Sentinel may declare the primary down and promote the replica), with short failure
 * detection (`down-after-milliseconds` 1 s) so a failover test takes seconds. Each server is a
 * test/lab/redis.ts instance (its own port and directory, stop/restart/freeze).
 */
import { Redis } from 'ioredis';
import { startRedis, type RedisLab } from './redis.js';
import { waitFor } from './wait.js';

export const MASTER_NAME = 'mymaster';
/** Sentinel's failure detection: the primary is "down" after this long without a valid reply. */
export const SENTINEL_DOWN_AFTER_MS = 1_000;

export interface SentinelLab {
  readonly primary: RedisLab;
  readonly replica: RedisLab;
  readonly sentinel: RedisLab;
  readonly masterName: typeof MASTER_NAME;
  /** `cache.redis_sentinels`: `127.0.0.1:<port>` of each Sentinel. */
  readonly sentinels: string[];
  /** The port the Sentinel names as primary now. */
  primaryPort(): Promise<number>;
  /** Resolves with the new primary's port once the Sentinel names a primary other than `oldPort`. */
  waitForPromotion(oldPort: number, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface SentinelLabOptions {
  /** The primary's and the replica's password (`requirepass`, `masterauth`); the Sentinel takes none. */
  password?: string;
}

export async function startSentinelLab(options: SentinelLabOptions = {}): Promise<SentinelLab> {
  const password = options.password;
  const started: RedisLab[] = [];
  const clients: Redis[] = [];
  try {
    // A replica's first sync would wait 5 s (repl-diskless-sync-delay) for other replicas to join it.
    const fastSync = ['--repl-diskless-sync-delay', '0', ...(password ? ['--requirepass', password, '--masterauth', password] : [])];
    const primary = await startRedis({ extraArgs: fastSync });
    started.push(primary);
    const replica = await startRedis({ extraArgs: [...fastSync, '--replicaof', '127.0.0.1', String(primary.port)] });
    started.push(replica);
    const replicaClient = client(replica.port, clients, password);
    await waitFor(async () => (await replicaClient.info('replication')).includes('master_link_status:up'), 'the replica to sync with the primary');

    const sentinel = await startRedis({
      binary: 'redis-sentinel',
      config: [
        'protected-mode no',
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${SENTINEL_DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        ...(password ? [`sentinel auth-pass ${MASTER_NAME} ${password}`] : []),
        '',
      ].join('\n'),
    });
    started.push(sentinel);
    const sentinelClient = client(sentinel.port, clients);
    // A failover needs a replica the Sentinel knows (it learns them from the primary's INFO).
    await waitFor(
      async () => ((await sentinelClient.call('SENTINEL', 'REPLICAS', MASTER_NAME)) as unknown[]).length > 0,
      'the Sentinel to discover the replica',
    );

    const primaryPort = async (): Promise<number> => {
      const [, port] = (await sentinelClient.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as [string, string];
      return Number(port);
    };
    return {
      primary,
      replica,
      sentinel,
      masterName: MASTER_NAME,
      sentinels: [`127.0.0.1:${sentinel.port}`],
      primaryPort,
      async waitForPromotion(oldPort, timeoutMs) {
        let port = oldPort;
        await waitFor(async () => (port = await primaryPort()) !== oldPort, `the Sentinel to promote a replica of ${oldPort}`, timeoutMs);
        return port;
      },
      async close() {
        for (const c of clients) c.disconnect();
        for (const lab of started.reverse()) await lab.close();
      },
    };
  } catch (err) {
    for (const c of clients) c.disconnect();
    for (const lab of started.reverse()) await lab.close();
    throw err;
  }
}

/** A plain client for the lab's own checks: fails fast, never queues. */
function client(port: number, all: Redis[], password?: string): Redis {
  const c = new Redis({ host: '127.0.0.1', port, password, maxRetriesPerRequest: 1, connectTimeout: 1_000, commandTimeout: 1_000 });
  c.on('error', () => {});
  all.push(c);
  return c;
}
