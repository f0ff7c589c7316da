import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore, type RedisStoreOptions } from '../../src/cache/redis-store.js';
import { startClusterLab, type ClusterLab } from '../lab/redis-cluster.js';
import { eventually } from '../lab/wait.js';
import { recordingLogger } from './recording-logger.js';
import { CONTRACT_COMMAND_TIMEOUT_MS, describeCacheStore, makeEntry } from './store-contract.js';

let lab: ClusterLab;
/** One plain client per node, for cleanup. */
let raws: Redis[];

beforeAll(async () => {
  const t0 = performance.now();
  lab = await startClusterLab();
  // The lab's start-up time, for the CI budget (test/lab/README.md).
  console.log(`cluster lab (3 nodes) ready in ${Math.round(performance.now() - t0)} ms`);
  raws = lab.nodes.map((n) => {
    const c = new Redis({ host: '127.0.0.1', port: n.port, maxRetriesPerRequest: 1, connectTimeout: 1_000 });
    c.on('error', () => {});
    return c;
  });
}, 60_000);
afterAll(async () => {
  for (const c of raws ?? []) c.disconnect();
  await lab?.close();
});

/** Cluster mode: the nodes are the starting points; the URL gives only user and TLS. */
function options(more: Partial<RedisStoreOptions> = {}): RedisStoreOptions {
  return { url: 'redis://127.0.0.1/0', clusterNodes: lab.addresses, ...more };
}

describeCacheStore('RedisStore on Redis Cluster', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const leasePrefix = `lease:${randomUUID()}:`;
  return {
    store: await RedisStore.open(options({ keyPrefix, leasePrefix, commandTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS })),
    reopen: () => RedisStore.open(options({ keyPrefix, leasePrefix, commandTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS })),
    cleanup: async () => {
      // Keys of different slots: one DEL each, on the node that holds it.
      for (const raw of raws) {
        for (const key of [...(await raw.keys(`${keyPrefix}*`)), ...(await raw.keys(`${leasePrefix}*`))]) await raw.del(key);
      }
    },
  };
}, { leases: true });

describe('RedisStore on Redis Cluster: node loss', () => {
  it('spreads entries over all three nodes (keys are not pinned to one slot)', async () => {
    const keyPrefix = `spread:${randomUUID()}:`;
    const store = await RedisStore.open(options({ keyPrefix }));
    try {
      const nodes = new Set<number>();
      for (let i = 0; i < 30; i++) {
        await store.put(makeEntry(`d${i}.example`));
        nodes.add(await lab.nodeOf(`${keyPrefix}d${i}.example`));
      }
      expect(nodes.size).toBe(3);
      expect(await store.count()).toBe(30);
    } finally {
      await store.close();
    }
  });

  it("a node stops: its keys' lookups reject within a bounded time (the resolver resolves them directly), the other nodes' keys still answer; after it is back every lookup answers", { timeout: 60_000 }, async () => {
    const keyPrefix = `loss:${randomUUID()}:`;
    const log = recordingLogger();
    const store = await RedisStore.open(options({ keyPrefix, logger: log }));
    const lost = 2;
    try {
      const entries = Array.from({ length: 30 }, (_, i) => makeEntry(`d${i}.example`));
      for (const e of entries) await store.put(e);
      const nodeOf = new Map<string, number>();
      for (const e of entries) nodeOf.set(e.domain, await lab.nodeOf(`${keyPrefix}${e.domain}`));

      await lab.nodes[lost]!.stop();
      for (const e of entries) {
        const t0 = performance.now();
        if (nodeOf.get(e.domain) === lost) {
          await expect(store.get(e.domain)).rejects.toThrow();
          // Bounded: the command timeout plus a reconnect attempt, never a hang.
          expect(performance.now() - t0).toBeLessThan(3_000);
        } else {
          expect(await store.get(e.domain)).toStrictEqual(e);
        }
      }
      // Writes to the surviving nodes go on.
      const survivor = entries.find((e) => nodeOf.get(e.domain) !== lost)!;
      await store.put({ ...survivor, failures: 7 });
      expect((await store.get(survivor.domain))!.failures).toBe(7);
      // A write to the lost node fails on its own; one node's loss is not logged as the cache's outage.
      const onLost = entries.find((e) => nodeOf.get(e.domain) === lost)!;
      await expect(store.put(onLost)).rejects.toThrow();
      expect(log.lines).toEqual([]);

      await lab.nodes[lost]!.restart();
      await lab.waitHealthy();
      // The restarted node kept its slots but not its data (no persistence in the lab): misses, no errors.
      for (const e of entries) {
        const got = await eventually(() => store.get(e.domain), 15_000);
        if (nodeOf.get(e.domain) !== lost) expect(got).toBeDefined();
      }
    } finally {
      await store.close();
    }
  });
});

