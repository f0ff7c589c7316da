/**
 * SqliteStore in this process: the store contract, the write queue, files that are not (or no longer)
 * usable databases, and lock contention. A writer killed mid-write is test/cache/sqlite-store-crash.test.ts.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/cache/open-store.js';
import { SCHEMA_VERSION, SchemaTooNewError, SqliteStore } from '../../src/cache/sqlite-store.js';
import { sleep, waitFor } from '../lab/wait.js';
import { describeCacheStore, makeEntry } from './store-contract.js';
import { bigPolicyEntry, describeByteBound } from './byte-bound.js';
import { recordingLogger } from './recording-logger.js';

let root: string;
let seq = 0;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'mta-sts-sqlite-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});
/** A fresh directory under the suite's temporary root. */
function freshDir(): string {
  const dir = join(root, `t${++seq}`);
  mkdirSync(dir);
  return dir;
}

describeCacheStore('SqliteStore', async () => {
  const path = join(freshDir(), 'cache.db');
  return {
    store: new SqliteStore({ path }),
    reopen: async () => new SqliteStore({ path }),
  };
});

describeByteBound('SqliteStore', async (maxBytes) => {
  const store = new SqliteStore({ path: join(freshDir(), 'cache.db'), maxBytes });
  return { store, bytes: () => store.bytes };
});

describe('SqliteStore', () => {
  const open: SqliteStore[] = [];
  const track = (s: SqliteStore): SqliteStore => (open.push(s), s);
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  it('creates missing parent directories, uses WAL, and records the schema version', async () => {
    const path = join(freshDir(), 'a', 'b', 'c', 'cache.db');
    const store = track(new SqliteStore({ path }));
    await store.put(makeEntry('example.com'));
    await store.flush();
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
      expect(raw.prepare('SELECT domain, failures, last_error_reason FROM policy').all()).toEqual([
        { domain: 'example.com', failures: 3, last_error_reason: 'tls' },
      ]);
    } finally {
      raw.close();
    }
  });

  it('migrates an empty (version 0) file', async () => {
    const path = join(freshDir(), 'cache.db');
    writeFileSync(path, '');
    const store = track(new SqliteStore({ path }));
    await store.put(makeEntry('example.com'));
    expect(await store.count()).toBe(1);
  });

  it('a large prune() lets I/O run between its short transactions', async () => {
    const store = track(new SqliteStore({ path: join(freshDir(), 'cache.db') }));
    for (let i = 0; i < 1_000; i++) await store.put(makeEntry(`d${i}.example`, { expiresAt: 1_000 }));
    await store.flush();
    let done = false;
    let ioRanBeforeDone: boolean | undefined;
    const pruning = store.prune(2_000).then((n) => ((done = true), n));
    setImmediate(() => (ioRanBeforeDone = !done));
    expect(await pruning).toBe(1_000);
    expect(ioRanBeforeDone).toBe(true);
    expect(await store.count()).toBe(0);
  });

  it('a cache file from before the expiry index gains it at open, its schema version unchanged (older versions read it as before)', async () => {
    const path = join(freshDir(), 'cache.db');
    track(new SqliteStore({ path }));
    await open.pop()!.close();
    const raw = new Database(path);
    raw.exec('DROP INDEX policy_expires_at');
    raw.close();
    const store = track(new SqliteStore({ path }));
    await store.put(makeEntry('example.com', { expiresAt: 1 }));
    expect(await store.prune(2)).toBe(1);
    const check = new Database(path, { readonly: true });
    try {
      expect(check.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'policy' AND sql IS NOT NULL`).pluck().all()).toEqual(['policy_expires_at']);
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      check.close();
    }
  });

  it('queues writes: get() sees them at once, the file after the flush timer or flush()', async () => {
    const path = join(freshDir(), 'cache.db');
    const store = track(new SqliteStore({ path, flushIntervalMs: 100 }));
    const raw = new Database(path, { readonly: true });
    const onDisk = (): number => (raw.prepare('SELECT count(*) AS n FROM policy').get() as { n: number }).n;
    try {
      await store.put(makeEntry('timer.example'));
      expect(await store.get('timer.example')).toStrictEqual(makeEntry('timer.example'));
      expect(onDisk()).toBe(0);
      await waitFor(() => onDisk() === 1, 'the flush timer to commit the write');

      await store.put(makeEntry('explicit.example'));
      expect(onDisk()).toBe(1);
      await store.flush();
      expect(onDisk()).toBe(2);
    } finally {
      raw.close();
    }
  });

  it('commits at once when the queue reaches flushMaxEntries', async () => {
    const path = join(freshDir(), 'cache.db');
    const store = track(new SqliteStore({ path, flushIntervalMs: 60_000, flushMaxEntries: 10 }));
    for (let i = 0; i < 9; i++) await store.put(makeEntry(`d${i}.example`));
    const raw = new Database(path, { readonly: true });
    try {
      const onDisk = (): number => (raw.prepare('SELECT count(*) AS n FROM policy').get() as { n: number }).n;
      expect(onDisk()).toBe(0);
      await store.put(makeEntry('d9.example'));
      expect(onDisk()).toBe(10);
    } finally {
      raw.close();
    }
  });

  it('close() commits what is still queued', async () => {
    const path = join(freshDir(), 'cache.db');
    const store = new SqliteStore({ path, flushIntervalMs: 60_000 });
    await store.put(makeEntry('example.com'));
    await store.close();
    const again = track(new SqliteStore({ path }));
    expect(await again.get('example.com')).toStrictEqual(makeEntry('example.com'));
  });

  it('moves a file that is not a database aside, logs it, and starts empty', async () => {
    const dir = freshDir();
    const path = join(dir, 'cache.db');
    const garbage = 'this is not an SQLite database\n'.repeat(200);
    writeFileSync(path, garbage);
    writeFileSync(`${path}-wal`, 'stale wal');
    const log = recordingLogger();
    const store = track(new SqliteStore({ path, logger: log }));

    expect(await store.count()).toBe(0);
    await store.put(makeEntry('example.com'));
    await store.flush();
    expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));

    const aside = readdirSync(dir).filter((f) => f.startsWith('cache.db.corrupt-'));
    const main = aside.find((f) => !f.endsWith('-wal') && !f.endsWith('-shm'));
    expect(main).toMatch(/^cache\.db\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/);
    expect(readFileSync(join(dir, main!), 'utf8')).toBe(garbage);
    // SQLite itself discards the stale WAL when the unusable handle is closed; it must not leak into the new file.
    expect(readdirSync(dir).filter((f) => f.endsWith('-wal') && readFileSync(join(dir, f), 'utf8') === 'stale wal')).toEqual([]);

    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatchObject({
      level: 'error',
      obj: { path, movedTo: join(dir, main!) },
      msg: 'cache database unreadable: moved aside, starting with an empty cache',
    });
    expect(String(log.lines[0]!.obj.err)).toMatch(/not a database/);
  });

  it('moves a database with damaged pages aside (quick_check at open) and starts empty', async () => {
    const dir = freshDir();
    const path = join(dir, 'cache.db');
    const first = new SqliteStore({ path });
    for (let i = 0; i < 300; i++) await first.put(makeEntry(`d${i}.example`, { text: `${i}:`.padEnd(2_000, 'x') }));
    await first.close();
    const size = statSync(path).size;
    expect(size).toBeGreaterThan(20 * 4096);
    // Keep the header page, overwrite pages 3..20 with a repeating pattern.
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(18 * 4096, 0xa5), 0, 18 * 4096, 2 * 4096);
    closeSync(fd);

    const log = recordingLogger();
    const store = track(new SqliteStore({ path, logger: log }));
    expect(await store.count()).toBe(0);
    expect(log.lines.map((l) => l.level)).toEqual(['error']);
    const aside = readdirSync(dir).filter((f) => f.startsWith('cache.db.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(statSync(join(dir, aside[0]!)).size).toBe(size);
    await store.put(makeEntry('example.com'));
    expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
  });

  it('moves aside a database whose table does not match its schema version', async () => {
    const dir = freshDir();
    const path = join(dir, 'cache.db');
    const raw = new Database(path);
    raw.exec(`CREATE TABLE policy (domain TEXT PRIMARY KEY, blob TEXT); PRAGMA user_version = ${SCHEMA_VERSION};`);
    raw.close();
    const log = recordingLogger();
    const store = track(new SqliteStore({ path, logger: log }));
    expect(await store.count()).toBe(0);
    expect(String(log.lines[0]?.obj.err)).toMatch(/table policy has columns \[domain, blob\]/);
    expect(readdirSync(dir).filter((f) => f.startsWith('cache.db.corrupt-'))).toHaveLength(1);
  });

  it('refuses a schema version newer than it knows, leaving the file untouched', async () => {
    const dir = freshDir();
    const path = join(dir, 'cache.db');
    const raw = new Database(path);
    raw.exec(`CREATE TABLE future (x); INSERT INTO future VALUES (42); PRAGMA user_version = ${SCHEMA_VERSION + 7};`);
    raw.close();
    const before = readFileSync(path);

    const log = recordingLogger();
    let error: unknown;
    try {
      track(new SqliteStore({ path, logger: log }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SchemaTooNewError);
    expect((error as Error).message).toBe(
      `cache database ${path} has schema version ${SCHEMA_VERSION + 7}, newer than the ${SCHEMA_VERSION} this ` +
        'version knows: run the newer mta-sts-sidecar, or remove the file to start with an empty cache',
    );
    expect(readdirSync(dir)).toEqual(['cache.db']);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(log.lines).toEqual([]);
    await expect(openStore({ store: 'sqlite', path, redisUrl: '' }, log)).rejects.toBeInstanceOf(SchemaTooNewError);
  });

  it('is what openStore() returns for store: sqlite, at cache.path', async () => {
    const path = join(freshDir(), 'sub', 'cache.db');
    const store = await openStore({ store: 'sqlite', path, redisUrl: 'redis://127.0.0.1:1/0' }, recordingLogger());
    try {
      expect(store).toBeInstanceOf(SqliteStore);
      expect((store as SqliteStore).path).toBe(path);
      await store.put(makeEntry('example.com'));
      await store.flush();
      expect(statSync(path).isFile()).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('while commits fail, put() does not wait out the busy timeout on every call', async () => {
    const path = join(freshDir(), 'cache.db');
    const store = track(new SqliteStore({ path, flushIntervalMs: 5, flushMaxEntries: 2, flushRetryMs: 60_000, busyTimeoutMs: 300 }));
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) await store.put(makeEntry(`d${i}.example`));
      // One attempt waits up to the busy timeout; the other 19 puts only queue.
      expect(performance.now() - t0).toBeLessThan(1_500);
      expect(await store.get('d19.example')).toStrictEqual(makeEntry('d19.example'));
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    await store.flush();
    expect(await store.count()).toBe(20);
  });

  it('a background flush that fails keeps the writes queued, logs once, and succeeds later', async () => {
    const path = join(freshDir(), 'cache.db');
    const log = recordingLogger();
    const store = track(new SqliteStore({ path, logger: log, flushIntervalMs: 5, flushRetryMs: 20, busyTimeoutMs: 0 }));
    // Another connection holds the write lock, as a long `cache` CLI transaction would.
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      await store.put(makeEntry('example.com'));
      await waitFor(() => log.lines.length > 0, 'the first failed commit to be logged');
      // Behaviour under test, not synchronisation: a stretch of about seven more retries (every 20 ms),
      // all SQLITE_BUSY, must add no log line.
      await sleep(150);
      expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
      expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
        ['error', 'cache database write failed; keeping the writes queued and retrying'],
      ]);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    await waitFor(() => log.lines.length >= 2, 'a retry after the lock is released to succeed and say so');
    expect(log.lines.map((l) => [l.level, l.msg])[1]).toEqual(['info', 'cache database writes succeed again']);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare('SELECT domain FROM policy').all()).toEqual([{ domain: 'example.com' }]);
    raw.close();
  });

  it('while commits fail, the queue is held to max_bytes too: the writes closest to expiry are dropped and counted at recovery', async () => {
    const path = join(freshDir(), 'cache.db');
    const log = recordingLogger();
    const maxBytes = 1024 * 1024;
    const store = track(new SqliteStore({ path, logger: log, maxBytes, flushIntervalMs: 5, flushMaxEntries: 1_000, flushRetryMs: 60_000, busyTimeoutMs: 0 }));
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const now = Date.now();
    try {
      await store.put(makeEntry('small.example', { expiresAt: now + 86_400_000 }));
      await waitFor(() => log.lines.length > 0, 'the first failed commit to be logged');
      // 40 entries of ~60 KB (their estimate is larger still) against a 1 MiB bound, the later ones
      // expiring later.
      for (let i = 0; i < 40; i++) await store.put(bigPolicyEntry(`d${i}.example`, 60_000, { expiresAt: now + 3_600_000 + i * 60_000 }));
      expect(await store.get('d0.example')).toBeUndefined();
      expect(await store.get('d39.example')).toBeDefined();
      expect(await store.get('small.example')).toBeDefined();
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    await store.flush();
    const kept = await store.count();
    expect(kept).toBeGreaterThan(1);
    expect(kept).toBeLessThan(41);
    expect(log.lines.map((l) => [l.level, l.msg])).toContainEqual(['info', 'cache database writes succeed again']);
    expect(log.lines.find((l) => l.msg === 'cache database writes succeed again')!.obj).toMatchObject({ writesLost: 41 - kept });
  });
});
