/**
 * A database file removed or replaced under a running SqliteStore: noticed at the next commit (logged
 * once), the path opened afresh, the queued writes written there; while it cannot be opened, writes stay
 * queued and the failure is logged once.
 */
import { existsSync, mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoreLogger } from '../../src/cache/store.js';
import { SqliteStore } from '../../src/cache/sqlite-store.js';
import { makeEntry } from './store-contract.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-reopen-'));
  dirs.push(dir);
  const lines: Array<{ level: string; msg: string | undefined }> = [];
  const logger: StoreLogger = {
    info: (_o, msg) => void lines.push({ level: 'info', msg }),
    warn: (_o, msg) => void lines.push({ level: 'warn', msg }),
    error: (_o, msg) => void lines.push({ level: 'error', msg }),
  };
  const path = join(dir, 'cache.db');
  const store = new SqliteStore({ path, logger, flushIntervalMs: 60_000, flushRetryMs: 60_000 });
  return { dir, path, store, lines, count: (msg: string) => lines.filter((l) => l.msg === msg).length };
}

describe('SqliteStore: file removed or replaced while open', () => {
  it('removed: the next flush logs once, makes a new file, and writes the queue into it', async () => {
    const { path, store, count } = setup();
    await store.put(makeEntry('a.example'));
    await store.flush();
    for (const suffix of ['', '-wal', '-shm']) if (existsSync(path + suffix)) unlinkSync(path + suffix);
    await store.put(makeEntry('b.example'));
    await store.flush();
    await store.put(makeEntry('c.example'));
    await store.flush();
    expect(count('cache database file was removed or replaced; reopening it')).toBe(1);
    expect(existsSync(path)).toBe(true);
    await store.close();
    const reopened = new SqliteStore({ path });
    expect((await reopened.get('b.example'))?.domain).toBe('b.example');
    expect((await reopened.get('c.example'))?.domain).toBe('c.example');
    expect(await reopened.get('a.example')).toBeUndefined(); // it went with the removed file
    await reopened.close();
  });

  it('replaced by another database: reads and writes go to the file now at the path', async () => {
    const { dir, path, store, count } = setup();
    await store.put(makeEntry('old.example'));
    await store.flush();
    const other = new SqliteStore({ path: join(dir, 'other.db') });
    await other.put(makeEntry('restored.example'));
    await other.close();
    renameSync(join(dir, 'other.db'), path);
    await store.put(makeEntry('new.example'));
    await store.flush();
    expect(count('cache database file was removed or replaced; reopening it')).toBe(1);
    expect((await store.get('restored.example'))?.domain).toBe('restored.example');
    expect((await store.get('new.example'))?.domain).toBe('new.example');
    await store.close();
  });

  it('while the path cannot be opened, flush() rejects, writes stay queued and readable, and land later', async () => {
    const { dir, path, store } = setup();
    await store.flush();
    rmSync(dir, { recursive: true, force: true });
    // A regular file where the directory was: the path cannot be opened (ENOTDIR), as on a read-only mount.
    (await import('node:fs')).writeFileSync(dir, 'not a directory');
    await store.put(makeEntry('queued.example'));
    await expect(store.flush()).rejects.toThrow();
    expect((await store.get('queued.example'))?.domain).toBe('queued.example');
    unlinkSync(dir);
    await store.flush();
    expect(existsSync(path)).toBe(true);
    await store.close();
    const reopened = new SqliteStore({ path });
    expect((await reopened.get('queued.example'))?.domain).toBe('queued.example');
    await reopened.close();
  });
});
