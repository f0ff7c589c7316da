import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/cache/open-store.js';
import { SCHEMA_VERSION, SchemaTooNewError, SqliteStore } from '../../src/cache/sqlite-store.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { describeCacheStore, makeEntry } from './store-contract.js';
import { recordingLogger } from './recording-logger.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

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

  it('queues writes: get() sees them at once, the file after the flush timer or flush()', async () => {
    const path = join(freshDir(), 'cache.db');
    const store = track(new SqliteStore({ path, flushIntervalMs: 100 }));
    const raw = new Database(path, { readonly: true });
    const onDisk = (): number => (raw.prepare('SELECT count(*) AS n FROM policy').get() as { n: number }).n;
    try {
      await store.put(makeEntry('timer.example'));
      expect(await store.get('timer.example')).toStrictEqual(makeEntry('timer.example'));
      expect(onDisk()).toBe(0);
      const deadline = Date.now() + 5_000;
      while (onDisk() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(onDisk()).toBe(1);

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
      await new Promise((r) => setTimeout(r, 150)); // several retries, all SQLITE_BUSY
      expect(await store.get('example.com')).toStrictEqual(makeEntry('example.com'));
      expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
        ['error', 'cache database write failed; keeping the writes queued and retrying'],
      ]);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    const deadline = Date.now() + 5_000;
    while (log.lines.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(log.lines.map((l) => [l.level, l.msg])[1]).toEqual(['info', 'cache database writes succeed again']);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare('SELECT domain FROM policy').all()).toEqual([{ domain: 'example.com' }]);
    raw.close();
  });
});

/**
 * A child process runs the real SqliteStore (transpiled from src/ into a temporary tree) and writes in a
 * tight loop, reporting each committed total on stdout. We SIGKILL it at a random moment, then check the
 * file opens without being moved aside, passes integrity_check, holds at least every reported commit, and
 * that every row is intact.
 */
describe('SqliteStore crash safety', () => {
  const ROUNDS = 20;

  /** The child's entry for index i, generation gen (rewrites bump gen); the parent rebuilds it to compare. */
  const ENTRY_JS = `
    function crashEntry(i, gen) {
      const domain = 'd' + i + '.crash.example';
      return {
        domain, id: 'id' + i + 'g' + gen,
        policy: { version: 'STSv1', mode: i % 2 ? 'enforce' : 'testing', maxAge: 86400 + i, mx: [{ wildcard: true, domain: 'mx' + i + '.example' }], extensions: [] },
        text: ('policy ' + i + ' gen ' + gen + ';').repeat(1 + ((i * 7 + gen) % 150)),
        fetchedAt: 1000 + i, expiresAt: 2000 + i, checkedAt: 3000 + gen,
        lastError: gen % 3 ? { reason: 'dns', message: 'gen ' + gen, at: gen } : null,
        failures: gen,
      };
    }`;
  const crashEntry = new Function(`${ENTRY_JS}; return crashEntry;`)() as (i: number, gen: number) => CacheEntry;

  const CHILD_JS = `
    import { SqliteStore } from './src/cache/sqlite-store.js';
    ${ENTRY_JS}
    const store = new SqliteStore({ path: process.argv[2], flushIntervalMs: 1, flushMaxEntries: 25 });
    let n = await store.count();
    for (let round = 1; round <= 1_000_000; round++) {
      for (let k = 0; k < 20; k++) await store.put(crashEntry(n + k, 0));
      for (let k = 0; k < 5 && n > 0; k++) await store.put(crashEntry((round * 37 + k) % n, round));
      await store.flush();
      n += 20;
      process.stdout.write(n + '\\n');
      if (round % 10 === 0) await new Promise((r) => setImmediate(r));
    }
  `;

  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'mta-sts-crash-'));
    transpileTree(join(REPO, 'src/cache/sqlite-store.ts'), work);
    symlinkSync(join(REPO, 'node_modules'), join(work, 'node_modules'));
    writeFileSync(join(work, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(join(work, 'writer.js'), CHILD_JS);
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it(`a writer SIGKILLed at ${ROUNDS} random moments never leaves an unreadable database`, { timeout: 120_000 }, async () => {
    const dir = freshDir();
    const path = join(dir, 'cache.db');
    let committed = 0;
    let killedMidWrite = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Every fifth round the kill may land during start-up (open, migration); the rest land mid-loop.
      const early = round % 5 === 0;
      const run = await runAndKill(work, path, early ? 0 : 1, Math.random() * (early ? 150 : 60));
      if (run.reported > 0) killedMidWrite++;
      committed = Math.max(committed, run.reported);

      if (existsSync(path)) {
        const raw = new Database(path, { readonly: true });
        expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
        raw.close();
      } else {
        expect(run.reported).toBe(0); // killed before it even created the file
      }

      const log = recordingLogger();
      const store = new SqliteStore({ path, logger: log });
      try {
        expect(log.lines).toEqual([]);
        const count = await store.count();
        expect(count).toBeGreaterThanOrEqual(committed);
        committed = count;
        if (count > 0) {
          const i = Math.floor(Math.random() * count);
          const got = await store.get(`d${i}.crash.example`);
          expect(got).toStrictEqual(crashEntry(i, got!.failures));
        }
        let listed = 0;
        for await (const entry of store.list()) {
          listed++;
          const i = Number(/^d(\d+)\./.exec(entry.domain)![1]);
          expect(entry).toStrictEqual(crashEntry(i, entry.failures));
        }
        expect(listed).toBe(count);
      } finally {
        await store.close();
      }
    }
    expect(readdirSync(dir).filter((f) => f.includes('corrupt'))).toEqual([]);
    expect(killedMidWrite).toBeGreaterThanOrEqual(ROUNDS - ROUNDS / 5);
    expect(committed).toBeGreaterThan(0);
  });
});

/** Spawn the writer; once it has reported `afterLines` commits, wait `delayMs` and SIGKILL it. */
async function runAndKill(work: string, path: string, afterLines: number, delayMs: number): Promise<{ reported: number }> {
  const child = spawn(process.execPath, [join(work, 'writer.js'), path], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    if (err.length < 4096) err += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  try {
    const deadline = Date.now() + 10_000;
    while (out.split('\n').length - 1 < afterLines && child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2));
    }
    if (child.exitCode !== null) throw new Error(`writer exited on its own (${child.exitCode}): ${err}`);
    if (out.split('\n').length - 1 < afterLines) throw new Error(`writer reported nothing within 10 s: ${err}`);
    await new Promise((r) => setTimeout(r, delayMs));
  } finally {
    child.kill('SIGKILL');
  }
  const { signal } = await exited;
  expect(signal).toBe('SIGKILL');
  const lines = out.split('\n').filter((l) => l !== '');
  return { reported: lines.length === 0 ? 0 : Number(lines.at(-1)) };
}

/** Transpile `entry` and every relative import it reaches into `outDir`, keeping paths relative to the repo. */
function transpileTree(entry: string, outDir: string): void {
  const todo = [entry];
  const done = new Set<string>();
  for (let i = 0; i < 200 && todo.length > 0; i++) {
    const file = todo.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const target = join(outDir, relative(REPO, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
    for (const m of outputText.matchAll(/from\s+['"](\.{1,2}\/[^'"]+)\.js['"]/g)) {
      todo.push(resolve(dirname(file), `${m[1]}.ts`));
    }
  }
  if (todo.length > 0) throw new Error('transpileTree: import graph larger than expected');
}
