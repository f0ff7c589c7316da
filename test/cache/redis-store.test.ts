import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.js';
import { openStore } from '../../src/cache/open-store.js';
import { RedisStore } from '../../src/cache/redis-store.js';
import type { PolicyStore } from '../../src/cache/store.js';
import { createTestCa } from '../lab/ca.js';
import { startRedis, type RedisLab } from '../lab/redis.js';
import { eventually, sleep, waitFor } from '../lab/wait.js';
import { CONTRACT_COMMAND_TIMEOUT_MS, describeCacheStore, makeEntry } from './store-contract.js';
import { recordingLogger } from './recording-logger.js';


/** How long `op` takes to reject; fails the test if it resolves. */
async function rejectionTime(op: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await expect(op()).rejects.toThrow();
  return performance.now() - t0;
}

let lab: RedisLab;
/** A plain client for looking at what the store wrote. */
let raw: Redis;

beforeAll(async () => {
  lab = await startRedis();
  raw = new Redis(lab.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await raw.connect();
});
afterAll(async () => {
  raw?.disconnect();
  await lab?.close();
});

describeCacheStore('RedisStore', async () => {
  // Each test gets its own key space on the one server.
  const keyPrefix = `test:${randomUUID()}:`;
  const leasePrefix = `lease:${randomUUID()}:`;
  return {
    store: await RedisStore.open({ url: lab.url, keyPrefix, leasePrefix, commandTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS }),
    reopen: () => RedisStore.open({ url: lab.url, keyPrefix, leasePrefix, commandTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS }),
    cleanup: async () => {
      const keys = [...(await raw.keys(`${keyPrefix}*`)), ...(await raw.keys(`${leasePrefix}*`))];
      if (keys.length > 0) await raw.del(...keys);
    },
  };
}, { leases: true });

describe('RedisStore', () => {
  it('stores JSON under mta-sts-sidecar:policy:<domain> by default', async () => {
    const store = await RedisStore.open({ url: lab.url });
    try {
      const entry = makeEntry('default-prefix.example');
      await store.put(entry);
      expect(JSON.parse((await raw.get('mta-sts-sidecar:policy:default-prefix.example'))!)).toStrictEqual(entry);
      expect(store.keyPrefix).toBe(DEFAULTS.cache.redis_key_prefix);
    } finally {
      await raw.del('mta-sts-sidecar:policy:default-prefix.example');
      await store.close();
    }
  });

  // The newer-write rule itself is in the contract (shared stores); here, what only Redis can hold.
  it('replaces a value under its key that is not ours (not our JSON)', async () => {
    const keyPrefix = `newer:${randomUUID()}:`;
    const store = await RedisStore.open({ url: lab.url, keyPrefix });
    try {
      await raw.set(`${keyPrefix}other.example`, 'not json');
      await store.put(makeEntry('other.example'));
      expect(await store.get('other.example')).toStrictEqual(makeEntry('other.example'));
    } finally {
      await raw.del(`${keyPrefix}other.example`);
      await store.close();
    }
  });

  it('sets a TTL of (expiresAt - now) + slack, and just the slack for an expired policy', async () => {
    const keyPrefix = `ttl:${randomUUID()}:`;
    const store = await RedisStore.open({ url: lab.url, keyPrefix });
    const slack = DEFAULTS.cache.redis_ttl_slack_ms;
    try {
      const now = Date.now();
      await store.put(makeEntry('live.example', { expiresAt: now + 600_000 }));
      await store.put(makeEntry('dead.example', { expiresAt: now - 86_400_000 }));
      const live = await raw.pttl(`${keyPrefix}live.example`);
      const dead = await raw.pttl(`${keyPrefix}dead.example`);
      expect(live).toBeLessThanOrEqual(600_000 + slack);
      expect(live).toBeGreaterThan(600_000 + slack - 5_000);
      expect(dead).toBeLessThanOrEqual(slack);
      expect(dead).toBeGreaterThan(slack - 5_000);
    } finally {
      await raw.del(`${keyPrefix}live.example`, `${keyPrefix}dead.example`);
      await store.close();
    }
  });

  it('lets Redis drop the key once the TTL runs out', async () => {
    const store = await RedisStore.open({ url: lab.url, keyPrefix: `expire:${randomUUID()}:`, ttlSlackMs: 150 });
    try {
      await store.put(makeEntry('short.example', { expiresAt: Date.now() - 1 }));
      expect(await store.get('short.example')).toBeDefined();
      // The key's TTL is the 150 ms slack: Redis removes it by itself, the store does nothing.
      await waitFor(async () => (await store.get('short.example')) === undefined, 'Redis to drop the expired key', 2_000);
      expect(await store.count()).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('list() and count() stay inside the prefix, even when it contains glob characters', async () => {
    const id = randomUUID().slice(0, 8);
    const globby = await RedisStore.open({ url: lab.url, keyPrefix: `glob${id}*?[ab]:` });
    // A key the unescaped pattern `glob<id>*?[ab]:*` would match.
    const neighbour = await RedisStore.open({ url: lab.url, keyPrefix: `glob${id}XYa:` });
    try {
      await globby.put(makeEntry('mine.example'));
      await neighbour.put(makeEntry('theirs.example'));
      const listed: string[] = [];
      for await (const e of globby.list()) listed.push(e.domain);
      expect(listed).toEqual(['mine.example']);
      expect(await globby.count()).toBe(1);
      expect(await neighbour.count()).toBe(1);
    } finally {
      await globby.delete('mine.example');
      await neighbour.delete('theirs.example');
      await globby.close();
      await neighbour.close();
    }
  });

  it('a malformed value is a rejected get() and a skipped, logged list() item', async () => {
    const keyPrefix = `junk:${randomUUID()}:`;
    const log = recordingLogger();
    const store = await RedisStore.open({ url: lab.url, keyPrefix, logger: log });
    try {
      await store.put(makeEntry('good.example'));
      await raw.set(`${keyPrefix}bad.example`, 'not json');
      await raw.set(`${keyPrefix}other.example`, JSON.stringify(makeEntry('elsewhere.example')));
      await expect(store.get('bad.example')).rejects.toThrow(`redis cache: malformed entry at key ${keyPrefix}bad.example`);
      await expect(store.get('other.example')).rejects.toThrow(/malformed entry/);
      const listed: string[] = [];
      for await (const e of store.list()) listed.push(e.domain);
      expect(listed).toEqual(['good.example']);
      expect(log.lines).toHaveLength(1);
      expect(log.lines[0]).toMatchObject({ level: 'warn', obj: { count: 2 }, msg: 'redis cache: malformed entries skipped' });
    } finally {
      await raw.del(`${keyPrefix}good.example`, `${keyPrefix}bad.example`, `${keyPrefix}other.example`);
      await store.close();
    }
  });

  it('prune(now) judges by the `now` it is given, not by the wall clock: a later `now` removes what expires before it', async () => {
    const keyPrefix = `prune-later:${randomUUID()}:`;
    const store = await RedisStore.open({ url: lab.url, keyPrefix });
    try {
      const now = Date.now();
      await store.put(makeEntry('a-minute.example', { expiresAt: now + 60_000 }));
      await store.put(makeEntry('a-day.example', { expiresAt: now + 86_400_000 }));
      expect(await store.prune(now)).toBe(0);
      expect(await store.prune(now + 61_000)).toBe(1);
      expect(await store.get('a-minute.example')).toBeUndefined();
      expect(await store.get('a-day.example')).toBeDefined();
      // A key that another daemon rewrote with a later expiry since is kept.
      await raw.set(`${keyPrefix}a-day.example`, JSON.stringify(makeEntry('a-day.example', { expiresAt: now + 2 * 86_400_000 })), 'PX', 60_000);
      expect(await store.prune(now + 86_400_000)).toBe(0);
      expect(await store.count()).toBe(1);
    } finally {
      await raw.del(`${keyPrefix}a-minute.example`, `${keyPrefix}a-day.example`);
      await store.close();
    }
  });

  it('refuses a URL that is not redis:// or rediss://, naming the config key', () => {
    expect(() => new RedisStore({ url: 'http://127.0.0.1:6379' })).toThrow(/^cache\.redis_url: must start with redis:\/\//);
    expect(() => new RedisStore({ url: '127.0.0.1:6379' })).toThrow(/^cache\.redis_url: not a URL/);
  });

  it('is what openStore() returns for store: redis, at cache.redis_url', async () => {
    const store = await openStore({ store: 'redis', path: '/nonexistent/x.db', redisUrl: lab.url }, recordingLogger());
    try {
      expect(store).toBeInstanceOf(RedisStore);
      expect(store.kind).toBe('redis');
      expect(await store.get(`absent-${randomUUID()}.example`)).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});

describe('RedisStore outages', () => {
  it('while Redis is down every call rejects fast and the outage is logged once; it recovers by itself', { timeout: 30_000 }, async () => {
    const outage = await startRedis();
    const log = recordingLogger();
    const store = await RedisStore.open({ url: outage.url, keyPrefix: 'outage:', logger: log });
    try {
      await store.put(makeEntry('example.com'));
      expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
      expect(log.lines).toEqual([]);

      await outage.stop();
      const calls: Array<() => Promise<unknown>> = [
        () => store.get('example.com'),
        () => store.put(makeEntry('example.org')),
        () => store.delete('example.com'),
        () => store.count(),
        async () => {
          for await (const _ of store.list()) void _;
        },
      ];
      for (let i = 0; i < 20; i++) {
        const ms = await rejectionTime(calls[i % calls.length]!);
        expect(ms).toBeLessThan(1_000);
      }
      // Behaviour under test, not synchronisation: during this stretch several reconnect attempts fail
      // (backoff 50, 100, 200, 400, 800 ms ...), and none may add a log line.
      await sleep(1_600);
      expect(await rejectionTime(() => store.get('example.com'))).toBeLessThan(1_000);
      expect(log.lines).toHaveLength(1);
      expect(log.lines[0]).toMatchObject({
        level: 'warn',
        obj: { redis: outage.url },
        msg: 'redis cache unreachable: lookups miss the shared cache until it is back (reconnecting)',
      });

      await outage.restart(); // same port, empty (nothing persisted)
      const t0 = Date.now();
      expect(await eventually(() => store.get('example.com'), 10_000)).toBeUndefined();
      expect(Date.now() - t0).toBeLessThan(DEFAULTS.cache.redis_reconnect_max_delay_ms + 2_000);
      await store.put(makeEntry('example.org'));
      expect(await store.get('example.org')).toStrictEqual(makeEntry('example.org'));
      expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'redis cache unreachable: lookups miss the shared cache until it is back (reconnecting)'],
        ['info', 'redis cache reachable again'],
      ]);
      // The 4 put() calls of the 20 above: counted, and said once, at the end of the outage.
      expect(log.lines[1]!.obj).toMatchObject({ writesLost: 4 });
    } finally {
      await store.close();
      await outage.close();
    }
  });

  it('writes that time out with the connection up start a run too: one warning, and one line with the count when Redis answers again', { timeout: 30_000 }, async () => {
    const hung = await startRedis();
    const log = recordingLogger();
    const store = await RedisStore.open({ url: hung.url, keyPrefix: 'hung-writes:', logger: log });
    try {
      hung.freeze();
      for (let i = 0; i < 3; i++) await expect(store.put(makeEntry(`w${i}.example`))).rejects.toThrow(/timed out/i);
      expect(log.lines.map((l) => l.level)).toEqual(['warn']);
      hung.thaw();
      await eventually(() => store.get('w0.example'), 10_000);
      expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'redis cache unreachable: lookups miss the shared cache until it is back (reconnecting)'],
        ['info', 'redis cache reachable again'],
      ]);
      expect(log.lines[1]!.obj).toMatchObject({ writesLost: 3 });
    } finally {
      hung.thaw();
      await store.close();
      await hung.close();
    }
  });

  it('a Redis that accepts but never answers makes calls reject after the command timeout, not hang', { timeout: 30_000 }, async () => {
    const hung = await startRedis();
    const log = recordingLogger();
    const store = await RedisStore.open({ url: hung.url, keyPrefix: 'hung:', logger: log });
    try {
      await store.put(makeEntry('example.com'));
      hung.freeze();
      const limit = DEFAULTS.cache.redis_command_timeout_ms + 500;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await expect(store.get('example.com')).rejects.toThrow(/timed out/i);
        expect(performance.now() - t0).toBeLessThan(limit);
      }
      hung.thaw();
      expect(await eventually(() => store.get('example.com'), 10_000)).toStrictEqual(makeEntry('example.com'));
    } finally {
      hung.thaw();
      await store.close();
      await hung.close();
    }
  });

  it('open() with Redis down resolves within its wait, logs once, then connects when Redis starts', { timeout: 30_000 }, async () => {
    const later = await startRedis();
    await later.stop();
    const log = recordingLogger();
    let store: PolicyStore | undefined;
    try {
      const t0 = performance.now();
      store = await RedisStore.open({ url: later.url, logger: log, waitMs: 300 });
      expect(performance.now() - t0).toBeLessThan(1_500);
      const s = store;
      expect(await rejectionTime(() => s.get('example.com'))).toBeLessThan(1_000);
      expect(log.lines.map((l) => l.level)).toEqual(['warn']);

      await later.restart();
      expect(await eventually(() => s.count(), 10_000)).toBe(0);
      expect(log.lines.map((l) => l.level)).toEqual(['warn', 'info']);
    } finally {
      await store?.close();
      await later.close();
    }
  });

  it('does not log the password of the Redis URL', async () => {
    const down = await startRedis();
    await down.stop();
    const log = recordingLogger();
    const store = await RedisStore.open({ url: `redis://user:s3cret@127.0.0.1:${down.port}/0`, logger: log, waitMs: 200 });
    try {
      expect(log.lines).toHaveLength(1);
      expect(log.lines[0]!.obj.redis).toBe(`redis://user:***@127.0.0.1:${down.port}/0`);
      expect(JSON.stringify(log.lines)).not.toContain('s3cret');
    } finally {
      await store.close();
      await down.close();
    }
  });
});

describe('openStore (store: redis)', () => {
  it('takes the password from cache.redis_password_file (first line), never from the log', async () => {
    const locked = await startRedis();
    // Set after start: the lab's readiness check is an unauthenticated PING.
    const admin = new Redis(locked.url, { maxRetriesPerRequest: 1 });
    await admin.config('SET', 'requirepass', 'file-s3cret');
    admin.disconnect();
    const dir = mkdtempSync(join(tmpdir(), 'redis-pw-'));
    const file = join(dir, 'password');
    writeFileSync(file, 'file-s3cret\nsecond line ignored\n', { mode: 0o600 });
    const log = recordingLogger();
    const config = { store: 'redis' as const, path: '', redisUrl: locked.url, redisPasswordFile: file };
    const store = await openStore(config, log);
    try {
      await store.put(makeEntry('locked.example'));
      expect(await store.get('locked.example')).toStrictEqual(makeEntry('locked.example'));
      expect(log.lines).toEqual([]);
      await expect(openStore({ ...config, redisPasswordFile: join(dir, 'missing') }, log)).rejects.toThrow(/^cache\.redis_password_file: cannot read .*ENOENT/);
    } finally {
      await store.close();
      await locked.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('RedisStore over TLS (rediss://)', () => {
  it('connects with cache.redis_tls_ca_file; without it the lab certificate is refused and calls reject', { timeout: 30_000 }, async () => {
    const ca = await createTestCa();
    const leaf = await ca.issue({ dnsNames: [], ipAddresses: ['127.0.0.1'] });
    const dir = mkdtempSync(join(tmpdir(), 'redis-tls-'));
    for (const [name, pem] of [['ca.pem', ca.certPem], ['cert.pem', leaf.certPem], ['key.pem', leaf.keyPem]] as const) {
      writeFileSync(join(dir, name), pem, { mode: 0o600 });
    }
    const tlsPort = await freeLoopbackPort();
    // The plain port stays for the lab's readiness PING; the store uses only the TLS one.
    const server = await startRedis({
      extraArgs: ['--tls-port', String(tlsPort), '--tls-cert-file', join(dir, 'cert.pem'), '--tls-key-file', join(dir, 'key.pem'), '--tls-auth-clients', 'no'],
    });
    const config = { store: 'redis' as const, path: '', redisUrl: `rediss://127.0.0.1:${tlsPort}/0` };
    const trusting = await openStore({ ...config, redisTlsCaFile: join(dir, 'ca.pem') }, recordingLogger());
    const log = recordingLogger();
    const untrusting = await openStore(config, log);
    try {
      await trusting.put(makeEntry('tls.example'));
      expect(await trusting.get('tls.example')).toStrictEqual(makeEntry('tls.example'));
      await expect(untrusting.get('tls.example')).rejects.toThrow();
      expect(JSON.stringify(log.lines)).toMatch(/self.signed|unable to (get|verify)|certificate/i);
    } finally {
      await trusting.close();
      await untrusting.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

describe('test/lab/redis', () => {
  it('says how to install redis-server when it is not on PATH', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent-bin';
    try {
      await expect(startRedis()).rejects.toThrow('install it with `apt-get install -y redis-server`');
    } finally {
      process.env.PATH = path;
    }
  });
});
