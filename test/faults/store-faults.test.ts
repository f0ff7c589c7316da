/**
 * Cache store faults under a running daemon, while queries flow: the sqlite file on a small tmpfs made
 * read-only, filled to the last byte, or deleted; Redis stopped and restarted. For each, answers go on
 * (from the hot tier, and from the network for new domains), the cause is logged once, and the store
 * recovers by itself: what was learned during the fault is in the store afterwards (checked by a
 * restarted daemon whose DNS is dead, so only the store can answer). SIGKILL during writes is covered by
 * test/integration/persistence.test.ts and test/cache/sqlite-store-crash.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, unlinkSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisLab } from '../lab/redis.js';
import { ZONE, eventually, hammer, secure, startDaemon, startWorld, type Daemon, type World } from './world.js';

const LABELS = Array.from({ length: 40 }, (_, i) => `s${i}`);
const d = (i: number) => `s${i}.${ZONE}`;
let world: World;
let mnt: string;

beforeAll(async () => {
  world = await startWorld(LABELS);
  mnt = mkdtempSync(join(tmpdir(), 'store-faults-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt]);
}, 60_000);

afterAll(async () => {
  await world?.close();
  if (mnt) {
    try {
      execFileSync('umount', ['-l', mnt]);
    } catch {
      /* not mounted */
    }
    rmSync(mnt, { recursive: true, force: true });
  }
});

const sqlite = (file: string) => ({ yaml: `cache: { store: sqlite, path: "${file}" }` });
const count = (daemon: Daemon, msg: string) => daemon.logs().filter((l) => l.msg === msg).length;

/** A second life of the daemon with DNS dead: only the store can answer `domains`. */
async function storeAnswers(file: string, labels: number[]): Promise<string[]> {
  world.faulty.set('drop');
  const again = await startDaemon(world, sqlite(file));
  try {
    const out: string[] = [];
    for (const i of labels) out.push(await again.client.query('postfix', d(i)));
    return out;
  } finally {
    await again.stop();
    world.faulty.set('pass');
  }
}

/** Learn `labels` now (each answered with its policy). */
async function learn(daemon: Daemon, labels: number[]): Promise<void> {
  for (const i of labels) expect(await daemon.client.query('postfix', d(i))).toBe(secure(`s${i}`));
}

describe('sqlite store faults', () => {
  it('directory turned read-only and the file removed: answers go on, one line each, writes land once writable again', async () => {
    // The kernel refuses to remount a file system read-only while the daemon holds the database open for
    // writing (EBUSY), so the fault is built the way it bites a running daemon: a read-only bind mount
    // over the directory (new opens fail with EROFS) and the file removed, so the daemon must reopen it.
    const dir = join(mnt, 'ro');
    const file = join(dir, 'cache.db');
    const alias = mkdtempSync(join(tmpdir(), 'store-faults-alias-'));
    const daemon = await startDaemon(world, sqlite(file));
    try {
      await learn(daemon, [0, 1, 2]);
      await eventually(() => existsSync(file), 'the database file');
      execFileSync('mount', ['--bind', dir, alias]); // a writable path to the same directory
      execFileSync('mount', ['--bind', dir, dir]);
      execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
      try {
        for (const f of readdirSync(alias)) unlinkSync(join(alias, f));
        await learn(daemon, [3, 4]); // new domains during the fault: learned, answered, queued for the store
        const seen = await hammer(daemon.client, [d(0), d(3)], 1_000);
        expect([...seen.get(d(0))!.keys()]).toEqual([secure('s0')]);
        expect([...seen.get(d(3))!.keys()]).toEqual([secure('s3')]);
        expect(count(daemon, 'cache database file was removed or replaced; reopening it')).toBe(1);
        expect(count(daemon, 'cache database write failed; keeping the writes queued and retrying')).toBe(1);
      } finally {
        execFileSync('umount', [dir]);
        execFileSync('umount', [alias]);
        rmSync(alias, { recursive: true, force: true });
      }
      await eventually(() => count(daemon, 'cache database writes succeed again') === 1, 'the store to recover');
    } finally {
      await daemon.stop();
    }
    expect(await storeAnswers(file, [3, 4, 0])).toEqual([secure('s3'), secure('s4'), secure('s0')]);
  });

  it('disk full: answers go on, one error line, writes land once there is room', async () => {
    const file = join(mnt, 'full', 'cache.db');
    const filler = join(mnt, 'filler');
    const daemon = await startDaemon(world, sqlite(file));
    try {
      await learn(daemon, [10]);
      fill(filler);
      try {
        await learn(daemon, [11, 12, 13, 14, 15, 16, 17, 18, 19]);
        const seen = await hammer(daemon.client, [d(10), d(15)], 1_000);
        expect([...seen.get(d(10))!.keys()]).toEqual([secure('s10')]);
        expect([...seen.get(d(15))!.keys()]).toEqual([secure('s15')]);
        expect(count(daemon, 'cache database write failed; keeping the writes queued and retrying')).toBe(1);
      } finally {
        unlinkSync(filler);
      }
      await eventually(() => count(daemon, 'cache database writes succeed again') === 1, 'the store to recover');
    } finally {
      await daemon.stop();
    }
    expect(await storeAnswers(file, [10, 15, 19])).toEqual([secure('s10'), secure('s15'), secure('s19')]);
  });

  it('the database file deleted under the running daemon: noticed once, a new file is made, later writes land in it', async () => {
    const file = join(mnt, 'deleted', 'cache.db');
    const daemon = await startDaemon(world, sqlite(file));
    try {
      await learn(daemon, [20, 21]);
      await eventually(() => existsSync(file), 'the database file');
      for (const f of readdirSync(join(mnt, 'deleted'))) unlinkSync(join(mnt, 'deleted', f));
      await learn(daemon, [22, 23]);
      const seen = await hammer(daemon.client, [d(20), d(22)], 1_000);
      expect([...seen.get(d(20))!.keys()]).toEqual([secure('s20')]);
      expect([...seen.get(d(22))!.keys()]).toEqual([secure('s22')]);
      await eventually(() => existsSync(file), 'a new database file');
      expect(count(daemon, 'cache database file was removed or replaced; reopening it')).toBe(1);
    } finally {
      await daemon.stop();
    }
    // Learned after the deletion (and refreshed ones, which are rewritten at their next refresh).
    expect(await storeAnswers(file, [22, 23, 20])).toEqual([secure('s22'), secure('s23'), secure('s20')]);
  });
});

describe('redis store faults', () => {
  let redis: RedisLab;
  beforeAll(async () => {
    redis = await startRedis();
  }, 30_000);
  afterAll(() => redis?.close());

  it('Redis stopped and restarted while queries flow: answers go on, one line each way, reconnects by itself', async () => {
    const daemon = await startDaemon(world, { yaml: `cache: { store: redis, redis_url: "${redis.url}" }` });
    try {
      await learn(daemon, [30, 31]);
      await redis.stop();
      try {
        await learn(daemon, [32]);
        const seen = await hammer(daemon.client, [d(30), d(32)], 1_000);
        expect([...seen.get(d(30))!.keys()]).toEqual([secure('s30')]);
        expect([...seen.get(d(32))!.keys()]).toEqual([secure('s32')]);
      } finally {
        await redis.restart();
      }
      await eventually(() => count(daemon, 'redis cache reachable again') === 1, 'the redis client to reconnect');
      expect(count(daemon, 'redis cache unreachable: lookups miss the shared cache until it is back (reconnecting)')).toBe(1);
      // Said once: the writes lost during the outage are a count in the recovery line, each failed write
      // only a debug line; the failed store reads one warning (rate-limited to one a minute).
      const recovery = daemon.logs().find((l) => l.msg === 'redis cache reachable again')!;
      expect(recovery.writesLost).toBeGreaterThanOrEqual(1);
      expect(daemon.logs().filter((l) => l.msg === 'cache store write failed' && l.level !== 20)).toEqual([]);
      expect(count(daemon, 'cache store read failed; resolving without it')).toBeLessThanOrEqual(1);
      // Writes reach Redis again: a domain learned now is in the shared cache for the whole fleet.
      await learn(daemon, [33]);
      const other = await startDaemon(world, { yaml: `cache: { store: redis, redis_url: "${redis.url}" }` });
      world.faulty.set('drop');
      try {
        expect(await other.client.query('postfix', d(33))).toBe(secure('s33'));
      } finally {
        world.faulty.set('pass');
        await other.stop();
      }
    } finally {
      await daemon.stop();
    }
  });
});

/** Fills the file system holding `file` to the last byte (bounded: at most 64 writes). */
function fill(file: string): void {
  for (let i = 0, size = 8 << 20; i < 64 && size >= 512; i++) {
    try {
      writeFileSync(file, Buffer.alloc(size), { flag: 'a' });
    } catch {
      size >>= 1;
    }
  }
}
