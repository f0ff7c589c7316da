/**
 * The default persistent store: one SQLite file, one row per domain.
 *
 * - WAL journal with `synchronous=NORMAL`: a process killed at any moment leaves a readable database and
 *   loses no committed transaction (an OS crash may lose the last few, which a cache can afford).
 * - Writes never wait on the disk: put() queues the entry in memory and a timer commits the queue in one
 *   transaction (DEFAULTS.cache.sqlite_flush_interval_ms), or at once when the queue is large. get() reads
 *   the queue first, so a write is visible the moment put() resolves.
 * - The schema is versioned with `PRAGMA user_version` and upgraded by the step functions in MIGRATIONS.
 * - A file that is not a database, fails `PRAGMA quick_check`, or has a table layout we do not recognise is
 *   renamed to `<path>.corrupt-<timestamp>` and the store starts empty: it is a cache, and refetching beats
 *   not starting. A schema version newer than ours is refused instead (see SchemaTooNewError).
 * - A database file removed or replaced under the running daemon (rm, a restore, a cleanup script) is
 *   noticed at the next commit (the path no longer names the file we hold open) and opened afresh at the
 *   same path; until that succeeds (e.g. the directory is now read-only) writes stay queued and retried,
 *   like any failed commit. Logged once when noticed.
 * - Bounded in bytes (`cache.store_max_bytes`): after a commit that leaves the database's live pages
 *   ((page_count - freelist_count) * page_size) over the bound, the entries closest to expiry are deleted
 *   down to the low-water mark (src/cache/evict.ts). Freed pages are reused; the file does not shrink.
 * - prune() deletes expired entries (RFC 8461 §5.1), in short transactions with I/O let in between. An
 *   index on expires_at serves both; it is created at open if missing, outside the versioned schema,
 *   because an index changes no layout an older version reads (docs/decisions.md).
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DEFAULTS } from '../config/defaults.js';
import type { ReasonClass } from '../errors.js';
import { canonicalPolicy } from './entry-json.js';
import { entryBytes } from './entry-size.js';
import { lowWater } from './evict.js';
import type { StoreLogger } from './store.js';
import { PRUNE_LIMIT, type CacheEntry, type PolicyStore } from './store.js';

export interface SqliteStoreOptions {
  /** The database file. Its directory is created if missing. */
  path: string;
  logger?: StoreLogger;
  /** Default DEFAULTS.cache.sqlite_flush_interval_ms. */
  flushIntervalMs?: number;
  /** Default DEFAULTS.cache.sqlite_flush_max_entries. */
  flushMaxEntries?: number;
  /** Default DEFAULTS.cache.sqlite_flush_retry_ms. */
  flushRetryMs?: number;
  /** Default DEFAULTS.cache.sqlite_busy_timeout_ms. */
  busyTimeoutMs?: number;
  /** Default DEFAULTS.cache.store_max_bytes. */
  maxBytes?: number;
}

/** The file was written by a newer version; we neither read nor discard it. */
export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
  constructor(
    readonly path: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `cache database ${path} has schema version ${found}, newer than the ${supported} this version knows: ` +
        `run the newer mta-sts-sidecar, or remove the file to start with an empty cache`,
    );
  }
}

/** The file cannot be used as our cache database (not a database, damaged, or an unknown layout). */
class UnusableDatabaseError extends Error {
  override readonly name = 'UnusableDatabaseError';
}

type Db = Database.Database;

const TABLE = 'policy';

/**
 * MIGRATIONS[n] takes a database at user_version n to n + 1, inside one transaction. Append only: a step
 * that has shipped is never edited.
 */
const MIGRATIONS: ReadonlyArray<(db: Db) => void> = [
  // 0 -> 1: the policy table.
  (db) =>
    db.exec(`
      CREATE TABLE ${TABLE} (
        domain             TEXT    NOT NULL PRIMARY KEY,
        id                 TEXT    NOT NULL,
        policy             TEXT    NOT NULL, -- Policy as JSON
        text               TEXT    NOT NULL,
        fetched_at         INTEGER NOT NULL, -- ms since the epoch, like every *_at
        expires_at         INTEGER NOT NULL,
        checked_at         INTEGER NOT NULL,
        last_error_reason  TEXT,
        last_error_message TEXT,
        last_error_at      INTEGER,
        failures           INTEGER NOT NULL DEFAULT 0
      ) STRICT, WITHOUT ROWID
    `),
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const COLUMNS = [
  'domain',
  'id',
  'policy',
  'text',
  'fetched_at',
  'expires_at',
  'checked_at',
  'last_error_reason',
  'last_error_message',
  'last_error_at',
  'failures',
] as const;

interface Row {
  domain: string;
  id: string;
  policy: string;
  text: string;
  fetched_at: number;
  expires_at: number;
  checked_at: number;
  last_error_reason: string | null;
  last_error_message: string | null;
  last_error_at: number | null;
  failures: number;
}

/** list() reads this many rows per query, so no statement stays open while the caller holds the iterator. */
const LIST_PAGE_ROWS = 500;

/**
 * prune() deletes at most this many rows per transaction, then lets pending I/O run: better-sqlite3 is
 * synchronous, and a row of a 64 KiB policy frees a chain of overflow pages, so a chunk must stay small
 * for answers not to wait on it.
 */
const PRUNE_CHUNK_ROWS = 100;

/** Eviction rounds after one commit (each re-measures and deletes a proportional share). */
const EVICT_MAX_ROUNDS = 20;

/** Created at open when missing; serves prune() and eviction (closest to expiry first). */
const EXPIRY_INDEX = `CREATE INDEX IF NOT EXISTS ${TABLE}_expires_at ON ${TABLE} (expires_at)`;

const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const SILENT: StoreLogger = { info() {}, warn() {}, error() {} };

export class SqliteStore implements PolicyStore {
  readonly kind = 'sqlite';
  readonly path: string;
  readonly #logger: StoreLogger;
  readonly #flushIntervalMs: number;
  readonly #flushMaxEntries: number;
  readonly #flushRetryMs: number;
  readonly #busyTimeoutMs: number;
  readonly maxBytes: number;
  /** The open database, or null while a removed file could not be opened again. */
  #db: Db | null;
  /** Which file #db is (device and inode), to notice the path being removed or replaced. */
  #identity: { dev: number; ino: number } | null;
  #stmt!: Statements;
  #writeBatch!: (rows: Row[]) => void;
  /** Entries put but not yet committed, by domain. */
  readonly #pending = new Map<string, CacheEntry>();
  /** Estimated bytes of #pending: while commits fail it is bounded by maxBytes too. */
  #pendingBytes = 0;
  /** Queued writes dropped to keep that bound during the current run of failed commits. */
  #droppedWhileFailing = 0;
  #timer: NodeJS.Timeout | null = null;
  /** True while flushes fail; the failure is logged once, the recovery once. */
  #failing = false;
  #closed = false;

  /** Opens (creating or upgrading) the database now; throws SchemaTooNewError or on an unusable path. */
  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.#logger = options.logger ?? SILENT;
    this.#flushIntervalMs = options.flushIntervalMs ?? DEFAULTS.cache.sqlite_flush_interval_ms;
    this.#flushMaxEntries = options.flushMaxEntries ?? DEFAULTS.cache.sqlite_flush_max_entries;
    this.#flushRetryMs = options.flushRetryMs ?? DEFAULTS.cache.sqlite_flush_retry_ms;
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULTS.cache.sqlite_busy_timeout_ms;
    this.maxBytes = options.maxBytes ?? DEFAULTS.cache.store_max_bytes;

    this.#busyTimeoutMs = busyTimeoutMs;
    mkdirSync(dirname(this.path), { recursive: true });
    this.#db = openUsable(this.path, busyTimeoutMs, this.#logger);
    this.#identity = fileIdentity(this.path);
    this.#prepare(this.#db);
  }

  #prepare(db: Db): void {
    this.#stmt = {
      get: db.prepare(`SELECT * FROM ${TABLE} WHERE domain = ?`),
      upsert: db.prepare(
        `INSERT INTO ${TABLE} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})
         ON CONFLICT (domain) DO UPDATE SET ${COLUMNS.filter((c) => c !== 'domain')
           .map((c) => `${c} = excluded.${c}`)
           .join(', ')}`,
      ),
      delete: db.prepare(`DELETE FROM ${TABLE} WHERE domain = ?`),
      count: db.prepare(`SELECT count(*) AS n FROM ${TABLE}`),
      page: db.prepare(`SELECT * FROM ${TABLE} WHERE domain > ? ORDER BY domain LIMIT ?`),
      pruneExpired: db.prepare(
        `DELETE FROM ${TABLE} WHERE domain IN (SELECT domain FROM ${TABLE} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
      ),
      evictSoonest: db.prepare(`DELETE FROM ${TABLE} WHERE domain IN (SELECT domain FROM ${TABLE} ORDER BY expires_at LIMIT ?)`),
    };
    this.#writeBatch = db.transaction((rows: Row[]) => {
      for (const row of rows) this.#stmt.upsert.run(row);
    });
  }

  /**
   * The database to use now. When the path no longer names the file we hold open (removed or replaced),
   * the old one is closed and the path opened afresh; throws when that fails (the caller keeps its writes
   * queued and retries).
   */
  #current(): Db {
    const now = fileIdentity(this.path);
    if (this.#db !== null && now !== null && now.dev === this.#identity?.dev && now.ino === this.#identity.ino) return this.#db;
    if (this.#db !== null) {
      this.#logger.error({ path: this.path }, 'cache database file was removed or replaced; reopening it');
      this.#db.close();
      this.#db = null;
      // SQLite does not remove the write-ahead log of a file that moved while open: left there, the old
      // file's log would be replayed into whatever now sits at the path. It was ours; drop it.
      for (const suffix of ['-wal', '-shm']) rmSync(this.path + suffix, { force: true });
    }
    mkdirSync(dirname(this.path), { recursive: true });
    const db = openUsable(this.path, this.#busyTimeoutMs, this.#logger);
    this.#db = db;
    this.#identity = fileIdentity(this.path);
    this.#prepare(db);
    return db;
  }

  async get(domain: string): Promise<CacheEntry | undefined> {
    this.#assertOpen();
    const queued = this.#pending.get(domain);
    if (queued !== undefined) return structuredClone(queued);
    if (this.#db === null) this.#current();
    const row = this.#stmt.get.get(domain);
    return row === undefined ? undefined : fromRow(row);
  }

  async put(entry: CacheEntry): Promise<void> {
    this.#assertOpen();
    this.#queue(entry);
    // While commits fail (e.g. another process holds the lock) only the retry timer tries again: put() must
    // not wait out the busy timeout on every call.
    if (this.#pending.size >= this.#flushMaxEntries && !this.#failing) {
      this.#flushQueued();
    } else if (this.#timer === null) {
      this.#schedule(this.#flushIntervalMs);
    }
  }

  async delete(domain: string): Promise<boolean> {
    this.#assertOpen();
    const wasQueued = this.#unqueue(domain);
    this.#current();
    const removed = this.#stmt.delete.run(domain).changes > 0;
    return wasQueued || removed;
  }

  async *list(): AsyncIterable<CacheEntry> {
    this.#assertOpen();
    this.#flushOrThrow();
    // Keyset pages: each query finishes before we yield, so the caller may read and write between entries.
    let after = '';
    for (;;) {
      this.#assertOpen();
      const rows = this.#stmt.page.all(after, LIST_PAGE_ROWS);
      for (const row of rows) yield fromRow(row);
      const last = rows.at(-1);
      if (rows.length < LIST_PAGE_ROWS || last === undefined) return;
      after = last.domain;
    }
  }

  async count(): Promise<number> {
    this.#assertOpen();
    this.#flushOrThrow();
    return this.#stmt.count.get()!.n;
  }

  async prune(now: number, limit = PRUNE_LIMIT): Promise<number> {
    this.#assertOpen();
    let removed = 0;
    for (const [domain, entry] of this.#pending) {
      if (removed >= limit) return removed;
      if (entry.expiresAt <= now && this.#unqueue(domain)) removed++;
    }
    if (this.#db === null) this.#current();
    // Bounded: each round removes at least one row or ends the loop.
    while (removed < limit) {
      const n = this.#stmt.pruneExpired.run(now, Math.min(PRUNE_CHUNK_ROWS, limit - removed)).changes;
      removed += n;
      if (n < PRUNE_CHUNK_ROWS) break;
      await yieldToIo();
      if (this.#closed) break;
    }
    return removed;
  }

  /** Bytes in the database's live pages (table, index, page overhead; not counting free pages). */
  get bytes(): number {
    this.#assertOpen();
    const db = this.#db ?? this.#current();
    return liveBytes(db);
  }

  async flush(): Promise<void> {
    this.#assertOpen();
    this.#flushOrThrow();
  }

  /** Commits what is queued, then closes. Rejects (after closing) if the last commit failed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTimer();
    let lost: unknown = null;
    try {
      if (this.#pending.size > 0) this.#current();
      this.#commit();
    } catch (err) {
      lost = err;
      this.#logger.error(
        { path: this.path, entries: this.#pending.size, err: errorMessage(err) },
        'cache database: queued writes lost at close',
      );
    }
    this.#clearQueue();
    this.#db?.close();
    if (lost !== null) throw lost;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`cache database ${this.path}: used after close()`);
  }

  /**
   * Queue a write. The queue empties at every commit; only while commits fail can it grow, and then it
   * is held to maxBytes (estimated) like the file: the queued entries closest to expiry are dropped
   * first, counted, and reported when writes succeed again.
   */
  #queue(entry: CacheEntry): void {
    this.#unqueue(entry.domain);
    this.#pending.set(entry.domain, structuredClone(entry));
    this.#pendingBytes += entryBytes(entry);
    if (this.#pendingBytes <= this.maxBytes) return;
    const target = lowWater(this.maxBytes);
    const byExpiry = [...this.#pending.values()].sort((a, b) => a.expiresAt - b.expiresAt);
    let dropped = 0;
    for (const queued of byExpiry) {
      if (this.#pendingBytes <= target) break;
      this.#unqueue(queued.domain);
      dropped++;
    }
    // During a run of failed commits the count goes into the recovery line; otherwise (a single batch
    // larger than the bound) it is news now.
    if (this.#failing) this.#droppedWhileFailing += dropped;
    else this.#logger.warn({ path: this.path, dropped, maxBytes: this.maxBytes }, 'cache database: queued writes over cache.store_max_bytes dropped');
  }

  #unqueue(domain: string): boolean {
    const queued = this.#pending.get(domain);
    if (queued === undefined) return false;
    this.#pending.delete(domain);
    this.#pendingBytes -= entryBytes(queued);
    return true;
  }

  #clearQueue(): void {
    this.#pending.clear();
    this.#pendingBytes = 0;
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#flushQueued();
    }, delayMs);
    // A queued write alone does not keep the process alive; whoever exits calls close() or flush().
    this.#timer.unref();
  }

  #cancelTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Background flush: a failure keeps the queue and retries later; logged once per run of failures. */
  #flushQueued(): void {
    if (this.#closed) return;
    this.#cancelTimer();
    try {
      this.#commit();
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        this.#logger.error(
          { path: this.path, entries: this.#pending.size, retryMs: this.#flushRetryMs, err: errorMessage(err) },
          'cache database write failed; keeping the writes queued and retrying',
        );
      }
      this.#schedule(this.#flushRetryMs);
    }
  }

  #flushOrThrow(): void {
    this.#cancelTimer();
    try {
      this.#current();
      this.#commit();
    } catch (err) {
      this.#schedule(this.#flushRetryMs);
      throw err;
    }
  }

  /** One transaction for everything queued; the queue is emptied only once it committed. */
  #commit(): void {
    if (this.#pending.size === 0) return;
    this.#current();
    this.#writeBatch([...this.#pending.values()].map(toRow));
    this.#clearQueue();
    if (this.#failing) {
      this.#failing = false;
      this.#logger.info({ path: this.path, writesLost: this.#droppedWhileFailing }, 'cache database writes succeed again');
      this.#droppedWhileFailing = 0;
    }
    this.#enforceBound();
  }

  /**
   * Over maxBytes after a commit: delete the entries closest to expiry, a share proportional to the excess
   * per round, until the live pages are at the low-water mark. A failure here loses no write; it is logged
   * and tried again after the next commit.
   */
  #enforceBound(): void {
    const db = this.#db;
    if (db === null || liveBytes(db) <= this.maxBytes) return;
    const target = lowWater(this.maxBytes);
    let evicted = 0;
    try {
      for (let round = 0; round < EVICT_MAX_ROUNDS; round++) {
        const used = liveBytes(db);
        if (used <= target) break;
        const rows = this.#stmt.count.get()!.n;
        if (rows === 0) break;
        const share = Math.max(1, Math.ceil((rows * (used - target)) / used));
        evicted += this.#stmt.evictSoonest.run(share).changes;
      }
    } catch (err) {
      this.#logger.warn({ path: this.path, err: errorMessage(err) }, 'cache database: evicting over cache.store_max_bytes failed');
      return;
    }
    this.#logger.info(
      { path: this.path, evicted, maxBytes: this.maxBytes, bytes: liveBytes(db) },
      'cache database over cache.store_max_bytes: evicted the entries closest to expiry',
    );
  }
}

interface Statements {
  get: Database.Statement<[string], Row>;
  upsert: Database.Statement<[Row]>;
  delete: Database.Statement<[string]>;
  count: Database.Statement<[], { n: number }>;
  page: Database.Statement<[string, number], Row>;
  pruneExpired: Database.Statement<[number, number]>;
  evictSoonest: Database.Statement<[number]>;
}

/** (page_count - freelist_count) * page_size: what the data takes, whatever the file's high-water size. */
function liveBytes(db: Db): number {
  const pages = db.pragma('page_count', { simple: true }) as number;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  const size = db.pragma('page_size', { simple: true }) as number;
  return (pages - free) * size;
}

/** Device and inode of the file at `path`, or null when there is none. */
function fileIdentity(path: string): { dev: number; ino: number } | null {
  try {
    const { dev, ino } = statSync(path);
    return { dev, ino };
  } catch {
    return null;
  }
}

function toRow(entry: CacheEntry): Row {
  return {
    domain: entry.domain,
    id: entry.id,
    policy: JSON.stringify(entry.policy),
    text: entry.text,
    fetched_at: entry.fetchedAt,
    expires_at: entry.expiresAt,
    checked_at: entry.checkedAt,
    last_error_reason: entry.lastError?.reason ?? null,
    last_error_message: entry.lastError?.message ?? null,
    last_error_at: entry.lastError?.at ?? null,
    failures: entry.failures,
  };
}

function fromRow(row: Row): CacheEntry {
  return {
    domain: row.domain,
    id: row.id,
    policy: canonicalPolicy(JSON.parse(row.policy) as CacheEntry['policy']),
    text: row.text,
    fetchedAt: row.fetched_at,
    expiresAt: row.expires_at,
    checkedAt: row.checked_at,
    lastError:
      row.last_error_reason === null
        ? null
        : {
            reason: row.last_error_reason as ReasonClass,
            message: row.last_error_message ?? '',
            at: row.last_error_at ?? 0,
          },
    failures: row.failures,
  };
}

/** Open and upgrade the file; if it is unusable, move it aside (with its -wal/-shm) and start a new one. */
function openUsable(path: string, busyTimeoutMs: number, logger: StoreLogger): Db {
  try {
    return openAndMigrate(path, busyTimeoutMs);
  } catch (err) {
    if (!isUnusable(err)) throw err;
    const movedTo = moveAside(path);
    logger.error(
      { path, movedTo, err: errorMessage(err) },
      'cache database unreadable: moved aside, starting with an empty cache',
    );
    return openAndMigrate(path, busyTimeoutMs);
  }
}

function openAndMigrate(path: string, busyTimeoutMs: number): Db {
  const db = new Database(path, { timeout: busyTimeoutMs });
  try {
    // Read the version before writing anything: a newer file is left exactly as it is.
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new SchemaTooNewError(path, version, SCHEMA_VERSION);
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new UnusableDatabaseError(`quick_check: ${String(check)}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`cache database ${path}: cannot use WAL journal (got ${String(mode)})`);
    db.pragma('synchronous = NORMAL');
    for (let v = version; v < SCHEMA_VERSION; v++) {
      const step = MIGRATIONS[v]!;
      db.transaction(() => {
        step(db);
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
    const columns = (db.pragma(`table_info(${TABLE})`) as Array<{ name: string }>).map((c) => c.name);
    if (columns.join() !== COLUMNS.join()) {
      throw new UnusableDatabaseError(
        `schema version ${SCHEMA_VERSION} but table ${TABLE} has columns [${columns.join(', ')}]`,
      );
    }
    db.exec(EXPIRY_INDEX);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** SQLite's own verdicts for "this is not (or no longer) a database", plus ours. */
function isUnusable(err: unknown): boolean {
  if (err instanceof UnusableDatabaseError) return true;
  if (!(err instanceof Database.SqliteError)) return false;
  return err.code === 'SQLITE_NOTADB' || err.code.startsWith('SQLITE_CORRUPT');
}

/** Rename the file and its WAL companions to `<path>.corrupt-<timestamp>[-wal|-shm]`; returns the new name. */
function moveAside(path: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let target = `${path}.corrupt-${stamp}`;
  for (let n = 1; n <= 100 && existsSync(target); n++) target = `${path}.corrupt-${stamp}-${n}`;
  for (const suffix of ['-wal', '-shm', '-journal']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
  }
  renameSync(path, target);
  return target;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
