import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/cache/open-store.js';
import { RedisStore, type RedisStoreOptions } from '../../src/cache/redis-store.js';
import { startSentinelLab, type SentinelLab } from '../lab/redis-sentinel.js';
import { eventually } from '../lab/wait.js';
import { recordingLogger } from './recording-logger.js';
import { CONTRACT_COMMAND_TIMEOUT_MS, describeCacheStore, makeEntry } from './store-contract.js';

let lab: SentinelLab;

beforeAll(async () => {
  const t0 = performance.now();
  lab = await startSentinelLab();
  // The lab's start-up time, for the CI budget (test/lab/README.md).
  console.log(`sentinel lab (primary, replica, sentinel) ready in ${Math.round(performance.now() - t0)} ms`);
}, 60_000);
afterAll(async () => {
  await lab?.close();
});

/** Sentinel mode: the URL's host is not used (the Sentinel names the primary), its database is. */
function options(more: Partial<RedisStoreOptions> = {}): RedisStoreOptions {
  return { url: 'redis://127.0.0.1/0', sentinels: lab.sentinels, masterName: lab.masterName, ...more };
}

/** A plain client on whatever server the Sentinel names primary now. */
async function primaryClient(): Promise<Redis> {
  const c = new Redis({ host: '127.0.0.1', port: await lab.primaryPort(), maxRetriesPerRequest: 1, lazyConnect: true });
  c.on('error', () => {});
  await c.connect();
  return c;
}


describeCacheStore('RedisStore via Sentinel', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const leasePrefix = `lease:${randomUUID()}:`;
  return {
    store: await RedisStore.open(options({ keyPrefix, leasePrefix, commandTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS })),
    reopen: () => RedisStore.open(options({ keyPrefix, leasePrefix, commandTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS })),
    cleanup: async () => {
      const raw = await primaryClient();
      try {
        const keys = [...(await raw.keys(`${keyPrefix}*`)), ...(await raw.keys(`${leasePrefix}*`))];
        if (keys.length > 0) await raw.del(...keys);
      } finally {
        raw.disconnect();
      }
    },
  };
}, { leases: true });

describe('openStore (store: redis) with Sentinels', () => {
  it('the data nodes want a password, the Sentinel none: cache.redis_password_file reaches the primary the Sentinel names', { timeout: 60_000 }, async () => {
    const locked = await startSentinelLab({ password: 'data-s3cret' });
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-pw-'));
    writeFileSync(join(dir, 'password'), 'data-s3cret\n', { mode: 0o600 });
    const log = recordingLogger();
    const config = {
      store: 'redis' as const,
      path: '',
      redisUrl: 'redis://127.0.0.1/0',
      redisSentinels: locked.sentinels,
      redisMasterName: locked.masterName,
      redisPasswordFile: join(dir, 'password'),
    };
    const store = await openStore(config, log);
    try {
      await store.put(makeEntry('locked.example'));
      expect(await store.get('locked.example')).toStrictEqual(makeEntry('locked.example'));
      expect(log.lines).toEqual([]);
    } finally {
      await store.close();
      await locked.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('RedisStore via Sentinel: failover', () => {
  // Last in the file: it leaves the replica as the primary.
  it('stop the primary: after the promotion the store answers and writes again by itself, within a bounded time; replicated entries are still there', { timeout: 60_000 }, async () => {
    const log = recordingLogger();
    const keyPrefix = `failover:${randomUUID()}:`;
    const store = await RedisStore.open(options({ keyPrefix, logger: log }));
    try {
      const before = Array.from({ length: 10 }, (_, i) => makeEntry(`before-${i}.example`));
      for (const e of before) await store.put(e);
      const raw = await primaryClient();
      // Replication is asynchronous: make sure the replica has them before the primary goes.
      expect(await raw.call('WAIT', '1', '2000')).toBe(1);
      raw.disconnect();

      const oldPort = await lab.primaryPort();
      expect(oldPort).toBe(lab.primary.port);
      const t0 = performance.now();
      await lab.primary.stop();

      // Until the promotion, calls reject (bounded by the command timeout), never hang.
      const c0 = performance.now();
      await store.get('before-0.example').catch(() => undefined);
      expect(performance.now() - c0).toBeLessThan(2_000);

      const newPort = await lab.waitForPromotion(oldPort, 30_000);
      expect(newPort).toBe(lab.replica.port);
      await eventually(() => store.put(makeEntry('after.example')), 15_000);
      const failoverMs = Math.round(performance.now() - t0);
      console.log(`sentinel failover: store writing again ${failoverMs} ms after the primary stopped`);

      expect(await store.get('after.example')).toStrictEqual(makeEntry('after.example'));
      for (const e of before) expect(await store.get(e.domain)).toStrictEqual(e);
      const onNew = await primaryClient();
      try {
        expect(JSON.parse((await onNew.get(`${keyPrefix}after.example`))!)).toStrictEqual(makeEntry('after.example'));
      } finally {
        onNew.disconnect();
      }
      expect(await store.tryLease('resolve:after.example', 'daemon-a', 10_000)).toBe(true);
      // The outage is said once when it starts and once when it ends.
      expect(log.lines.map((l) => l.level)).toEqual(['warn', 'info']);
    } finally {
      await store.close();
    }
  });
});
