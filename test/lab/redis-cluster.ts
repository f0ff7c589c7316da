/**
 * A 3-node Redis Cluster on 127.0.0.1 (primaries only, the 16384 slots split in three), made with
 * `redis-cli --cluster create`. Node failure is detected after `cluster-node-timeout` (1 s), and
 * `cluster-require-full-coverage no` keeps the other two nodes answering for their own slots while one
 * is down: the documented fallback is that only the keys of the lost node miss.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis, type RedisLab } from './redis.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
export const CLUSTER_NODE_TIMEOUT_MS = 1_000;
const NODES = 3;

export interface ClusterLab {
  readonly nodes: RedisLab[];
  /** `cache.redis_cluster_nodes`: `127.0.0.1:<port>` of each node. */
  readonly addresses: string[];
  /** The node (index into `nodes`) that serves `key` now. */
  nodeOf(key: string): Promise<number>;
  /** Resolves once every running node reports `cluster_state:ok` (after a restart). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startClusterLab(): Promise<ClusterLab> {
  const started: RedisLab[] = [];
  const clients: Redis[] = [];
  try {
    for (let i = 0; i < NODES; i++) {
      started.push(
        await startRedis({
          extraArgs: [
            '--cluster-enabled', 'yes',
            '--cluster-config-file', 'nodes-{port}.conf',
            '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS),
            '--cluster-require-full-coverage', 'no',
          ],
        }),
      );
    }
    const addresses = started.map((n) => `127.0.0.1:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    for (const n of started) {
      const c = new Redis({ host: '127.0.0.1', port: n.port, maxRetriesPerRequest: 1, connectTimeout: 1_000, commandTimeout: 1_000 });
      c.on('error', () => {});
      clients.push(c);
    }
    const healthy = async (i: number): Promise<boolean> => {
      try {
        return String(await clients[i]!.call('CLUSTER', 'INFO')).includes('cluster_state:ok');
      } catch {
        return false;
      }
    };
    const waitHealthy = async (timeoutMs = 15_000): Promise<void> => {
      for (let i = 0; i < NODES; i++) await waitFor(() => healthy(i), `cluster node ${addresses[i]} to report cluster_state:ok`, timeoutMs);
    };
    await waitHealthy();
    return {
      nodes: started,
      addresses,
      async nodeOf(key) {
        // Any node that answers knows the slot map (one may be stopped by the test).
        const c = await firstAnswering(clients);
        const slot = Number(await c.call('CLUSTER', 'KEYSLOT', key));
        const slots = (await c.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]]]>;
        const range = slots.find(([from, to]) => slot >= from && slot <= to);
        if (range === undefined) throw new Error(`no node serves slot ${slot}`);
        return started.findIndex((n) => n.port === range[2][1]);
      },
      waitHealthy,
      async close() {
        for (const c of clients) c.disconnect();
        for (const n of started.reverse()) await n.close();
      },
    };
  } catch (err) {
    for (const c of clients) c.disconnect();
    for (const n of started.reverse()) await n.close();
    throw err;
  }
}

async function firstAnswering(clients: Redis[]): Promise<Redis> {
  for (const c of clients) {
    try {
      await c.ping();
      return c;
    } catch {
      // stopped: the next one
    }
  }
  throw new Error('no cluster node answers');
}
