/**
 * A PolicyStore in PostgreSQL, shared by a fleet of daemons.
 *
 * - One row per domain in `<schema>.policies`, the entry as the JSON text we wrote (exact, like Redis),
 *   with domain, id, fetched_at and expires_at beside it for the upsert rule, prune() and an index.
 * - The schema is versioned (`<schema>.schema_version`) and upgraded by MIGRATIONS in one transaction
 *   under an advisory lock, so daemons starting together migrate once. A version newer than ours is
 *   refused (PostgresSchemaTooNewError): we never write into a layout we do not know.
 * - put() never replaces a newer entry with an older one: two daemons that fetched the same domain race
 *   to write, and the row keeps the larger (fetched_at, id) pair (an equal pair is a bookkeeping update of
 *   the same fetch, and is written). A put that loses resolves like one that won.
 * - A bounded pool (`cache.postgres_pool_max` connections), a connect timeout and a per-query timeout. An
 *   outage costs cache misses, never a hang or a crash: every call rejects within those bounds, the next
 *   call connects afresh (the pool reconnects by itself), and the outage is logged once when it starts
 *   (warn) and once when it ends (info, with the writes lost meanwhile), not per call. Errors of the
 *   server that are not about the connection (SQLSTATE outside classes 08, 53, 57) are bugs and are not
 *   counted as an outage.
 * - Until the database has been reached once the schema is not known to be in place: every call first
 *   makes sure of it (one attempt per call, shared by concurrent calls).
 * - prune() deletes expired rows (and lapsed leases) in bounded statements; the outer WHERE re-checks
 *   expires_at, so a row another daemon has just rewritten with a later expiry is kept.
 * - Bytes are governed by prune() (expired policies) and the database's own limits, as for Redis.
 * - Fleet leases: rows of `<schema>.leases` (key, owner, expires_at by the server's clock); taking one is
 *   an INSERT ... ON CONFLICT DO UPDATE that only succeeds on a lapsed lease or the owner's own.
 */
import pg from 'pg';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../errors.js';
import { leaseTtl } from './lease.js';
import { decodeEntry } from './entry-json.js';
import { PRUNE_LIMIT, type CacheEntry, type PolicyStore, type StoreLogger } from './store.js';

export interface PostgresStoreOptions {
  /** `postgres://[user[:password]@]host[:port]/database[?...]` (or `postgresql://`). */
  url: string;
  /** Takes precedence over a password in the URL (`cache.postgres_password_file`'s contents). */
  password?: string;
  logger?: StoreLogger;
  /** The PostgreSQL schema (namespace) holding our tables, created if missing. Default DEFAULTS.cache.postgres_schema. */
  schema?: string;
  /** Most connections at once. Default DEFAULTS.cache.postgres_pool_max. */
  poolMax?: number;
  /** Default DEFAULTS.cache.postgres_connect_timeout_ms. */
  connectTimeoutMs?: number;
  /** Default DEFAULTS.cache.postgres_query_timeout_ms. */
  queryTimeoutMs?: number;
  /** Idle connections are closed after this. Default DEFAULTS.cache.postgres_idle_timeout_ms. */
  idleTimeoutMs?: number;
  /** Rows per list() round trip. Default DEFAULTS.cache.postgres_list_batch. */
  listBatch?: number;
}

/** The database was set up by a newer version; we neither read nor write it. */
export class PostgresSchemaTooNewError extends Error {
  override readonly name = 'PostgresSchemaTooNewError';
  constructor(
    readonly where: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `postgres cache ${where} has schema version ${found}, newer than the ${supported} this version knows: ` +
        'run the newer mta-sts-sidecar, or use another cache.postgres_url / schema',
    );
  }
}

const SILENT: StoreLogger = { info() {}, warn() {}, error() {} };

/**
 * MIGRATIONS[n] takes the schema from version n to n + 1 (`%s` is the quoted schema name). Append only: a
 * step that has shipped is never edited.
 */
const MIGRATIONS: readonly string[] = [
  // 0 -> 1: policies and leases.
  `CREATE TABLE %s.policies (
     domain text PRIMARY KEY,
     policy_id text NOT NULL,
     fetched_at bigint NOT NULL,
     expires_at bigint NOT NULL,
     entry text NOT NULL
   );
   CREATE INDEX policies_expires_at ON %s.policies (expires_at);
   CREATE TABLE %s.leases (
     key text PRIMARY KEY,
     owner text NOT NULL,
     expires_at timestamptz NOT NULL
   );`,
];
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * SQLSTATE classes that mean "the database cannot be used right now", not "this statement is wrong":
 * 08 connection exception, 28 invalid authorization (a wrong password file), 3D no such database,
 * 53 insufficient resources (too many connections), 57 operator intervention (shutdown, cancelled query).
 */
const OUTAGE_SQLSTATE = /^(08|28|3D|53|57)/;

/** Most entries written in one statement. */
const WRITE_BATCH_MAX = 500;
/** Most rows one prune statement deletes. */
const PRUNE_BATCH = 1_000;

/** A queued write and the put() calls waiting for it. */
interface PendingWrite {
  entry: CacheEntry;
  json: string;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

export class PostgresStore implements PolicyStore {
  readonly kind = 'postgres';
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #logger: StoreLogger;
  /** The URL with any password masked, for logs. */
  readonly #where: string;
  readonly #q: string;
  readonly #listBatch: number;
  #schemaReady: Promise<void> | null = null;
  #schemaOk = false;
  #down = false;
  #lostWrites = 0;
  #closing = false;
  #ended = false;
  /** Writes not yet sent, by domain (the newest per domain: see put()). */
  #pending = new Map<string, PendingWrite>();
  /** The batch being written, if any: one at a time, so writes hold one pooled connection, not all. */
  #writing: Promise<void> | null = null;

  /** Creates the pool and returns at once; nothing is connected until the first call (or open()). */
  constructor(options: PostgresStoreOptions) {
    const url = parsePostgresUrl(options.url);
    this.#where = maskPassword(url);
    this.#logger = options.logger ?? SILENT;
    this.schema = options.schema ?? DEFAULTS.cache.postgres_schema;
    this.#q = quoteIdent(this.schema);
    this.#listBatch = options.listBatch ?? DEFAULTS.cache.postgres_list_batch;
    const queryTimeoutMs = options.queryTimeoutMs ?? DEFAULTS.cache.postgres_query_timeout_ms;
    this.#pool = new pg.Pool({
      // pg lets the connection string override a separate `password`: put the password file's in the URL.
      connectionString: withPassword(url, options.password),
      application_name: 'mta-sts-sidecar',
      max: options.poolMax ?? DEFAULTS.cache.postgres_pool_max,
      connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULTS.cache.postgres_connect_timeout_ms,
      idleTimeoutMillis: options.idleTimeoutMs ?? DEFAULTS.cache.postgres_idle_timeout_ms,
      // Client side (a server that stopped answering) and server side (a statement stuck on a lock).
      query_timeout: queryTimeoutMs,
      statement_timeout: queryTimeoutMs,
      keepAlive: true,
    });
    // An idle connection that breaks (server restart) is dropped by the pool; the event must be handled.
    this.#pool.on('error', (err: Error) => this.#markDown(err));
  }

  /**
   * Construct, then try (bounded by the connect timeout) to reach the database and put the schema in
   * place. Resolves either way, except for a schema newer than ours, which rejects.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.#ensureSchema();
    } catch (err) {
      if (err instanceof PostgresSchemaTooNewError) {
        await store.close();
        throw err;
      }
      // Unreachable: logged once by #markDown; calls reconnect.
    }
    return store;
  }

  async get(domain: string): Promise<CacheEntry | undefined> {
    const { rows } = await this.#query<{ entry: string }>(`SELECT entry FROM ${this.#q}.policies WHERE domain = $1`, [domain]);
    if (rows.length === 0) return undefined;
    const entry = decodeEntry(rows[0]!.entry);
    if (entry?.domain !== domain) throw new Error(`postgres cache: malformed entry for ${JSON.stringify(domain)}`);
    return entry;
  }

  /**
   * Resolves once the entry is written (or lost to a newer one already stored); rejects when it could not
   * be written. Concurrent puts are coalesced: while one batch is being written the next one gathers, and
   * goes out as one statement, so a burst of writes needs one connection and no pool wait.
   */
  async put(entry: CacheEntry): Promise<void> {
    if (this.#closing) throw new Error('postgres cache: store is closed');
    const json = JSON.stringify(entry); // a copy: later changes to `entry` are not written
    return new Promise<void>((resolve, reject) => {
      const queued = this.#pending.get(entry.domain);
      if (queued === undefined) {
        this.#pending.set(entry.domain, { entry, json, waiters: [{ resolve, reject }] });
      } else {
        // One row per domain per statement: keep the newer of the two (the same rule as the upsert).
        if (!isNewer(queued.entry, entry)) {
          queued.entry = entry;
          queued.json = json;
        }
        queued.waiters.push({ resolve, reject });
      }
      this.#writeNext();
    });
  }

  #writeNext(): void {
    if (this.#writing !== null || this.#pending.size === 0) return;
    const batch: PendingWrite[] = [];
    for (const [domain, write] of this.#pending) {
      batch.push(write);
      this.#pending.delete(domain);
      if (batch.length >= WRITE_BATCH_MAX) break;
    }
    this.#writing = this.#writeBatch(batch).then(
      () => {
        for (const w of batch) for (const waiter of w.waiters) waiter.resolve();
      },
      (err: unknown) => {
        if (!this.#closing && isOutage(err)) this.#lostWrites += batch.length;
        for (const w of batch) for (const waiter of w.waiters) waiter.reject(err);
      },
    ).finally(() => {
      this.#writing = null;
      this.#writeNext();
    });
  }

  async #writeBatch(batch: PendingWrite[]): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#q}.policies AS p (domain, policy_id, fetched_at, expires_at, entry)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[])
       ON CONFLICT (domain) DO UPDATE
         SET policy_id = excluded.policy_id, fetched_at = excluded.fetched_at,
             expires_at = excluded.expires_at, entry = excluded.entry
         WHERE (p.fetched_at, p.policy_id) <= (excluded.fetched_at, excluded.policy_id)`,
      [
        batch.map((w) => w.entry.domain),
        batch.map((w) => w.entry.id),
        batch.map((w) => Math.trunc(w.entry.fetchedAt)),
        batch.map((w) => Math.trunc(w.entry.expiresAt)),
        batch.map((w) => w.json),
      ],
    );
  }

  async delete(domain: string): Promise<boolean> {
    const { rowCount } = await this.#query(`DELETE FROM ${this.#q}.policies WHERE domain = $1`, [domain]);
    return (rowCount ?? 0) > 0;
  }

  /** Keyset pages in domain order: bounded memory, and a row is never seen twice. */
  async *list(): AsyncIterable<CacheEntry> {
    let after: string | null = null;
    let skipped = 0;
    // Bounded: each round either ends the loop or moves `after` strictly forward through a finite table.
    for (;;) {
      const { rows }: pg.QueryResult<{ domain: string; entry: string }> = await this.#query<{ domain: string; entry: string }>(
        after === null
          ? `SELECT domain, entry FROM ${this.#q}.policies ORDER BY domain LIMIT $1`
          : `SELECT domain, entry FROM ${this.#q}.policies WHERE domain > $2 ORDER BY domain LIMIT $1`,
        after === null ? [this.#listBatch] : [this.#listBatch, after],
      );
      for (const row of rows) {
        const entry = decodeEntry(row.entry);
        if (entry?.domain !== row.domain) {
          skipped++;
          continue;
        }
        yield entry;
      }
      if (rows.length < this.#listBatch) break;
      after = rows[rows.length - 1]!.domain;
    }
    if (skipped > 0) this.#logger.warn({ postgres: this.#where, count: skipped }, 'postgres cache: malformed entries skipped');
  }

  async count(): Promise<number> {
    const { rows } = await this.#query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#q}.policies`);
    return Number(rows[0]!.n);
  }

  /**
   * In statements of at most PRUNE_BATCH rows, each well inside the query timeout (which also bounds a
   * statement on the server), with other calls let in between; at most limit / PRUNE_BATCH + 1 rounds.
   */
  async prune(now: number, limit = PRUNE_LIMIT): Promise<number> {
    let removed = 0;
    while (removed < limit) {
      const batch = Math.min(PRUNE_BATCH, limit - removed);
      const { rowCount } = await this.#query(
        `DELETE FROM ${this.#q}.policies WHERE expires_at <= $1 AND domain IN (
           SELECT domain FROM ${this.#q}.policies WHERE expires_at <= $1 LIMIT $2)`,
        [Math.trunc(now), batch],
      );
      removed += rowCount ?? 0;
      if ((rowCount ?? 0) < batch) break;
    }
    // Lapsed leases: nobody holds them; one bounded sweep per prune keeps the table small.
    await this.#query(
      `DELETE FROM ${this.#q}.leases WHERE expires_at <= clock_timestamp() AND key IN (
         SELECT key FROM ${this.#q}.leases WHERE expires_at <= clock_timestamp() LIMIT $1)`,
      [PRUNE_BATCH],
    );
    return removed;
  }

  async tryLease(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const ttl = leaseTtl(ttlMs);
    const { rowCount } = await this.#query(
      `INSERT INTO ${this.#q}.leases AS l (key, owner, expires_at)
       VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE l.expires_at <= clock_timestamp() OR l.owner = excluded.owner`,
      [key, owner, ttl],
    );
    return rowCount === 1;
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    try {
      await this.#query(`DELETE FROM ${this.#q}.leases WHERE key = $1 AND owner = $2`, [key, owner]);
    } catch {
      // Never rejects: an unreleased lease lapses by itself.
    }
  }

  /** Waits for queued writes (put() itself resolves only once its row is written). Never rejects. */
  async flush(): Promise<void> {
    // Bounded: each round writes a batch; puts arriving meanwhile are at most what callers send.
    while (this.#writing !== null) await this.#writing;
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true; // no new puts; the queued ones are still written (or fail within the timeouts)
    await this.flush();
    this.#ended = true;
    await this.#pool.end().catch(() => {});
  }

  /** Every statement goes through here: the schema first, then outage bookkeeping around the query. */
  async #query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    if (this.#ended) throw new Error('postgres cache: store is closed');
    if (!this.#schemaOk) await this.#ensureSchema();
    try {
      const result = await this.#pool.query<R>(sql, params);
      this.#markUp();
      return result;
    } catch (err) {
      if (isOutage(err)) this.#markDown(err as Error);
      throw err;
    }
  }

  /** Creates or upgrades the schema; concurrent callers share one attempt, a failed one is retried next call. */
  #ensureSchema(): Promise<void> {
    this.#schemaReady ??= this.#migrate().then(
      () => {
        this.#schemaOk = true;
        this.#markUp();
      },
      (err: unknown) => {
        this.#schemaReady = null;
        if (isOutage(err)) this.#markDown(err as Error);
        throw err;
      },
    );
    return this.#schemaReady;
  }

  async #migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      // One migrating daemon at a time per schema; the lock ends with the transaction.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mta-sts-sidecar:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.#q}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#q}.schema_version (version integer NOT NULL)`);
      const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${this.#q}.schema_version`);
      const found = rows[0]?.version ?? 0;
      if (found > MIGRATIONS.length) throw new PostgresSchemaTooNewError(`${this.#where} schema ${this.schema}`, found, MIGRATIONS.length);
      for (let v = found; v < MIGRATIONS.length; v++) await client.query(MIGRATIONS[v]!.replaceAll('%s', this.#q));
      if (rows.length === 0) await client.query(`INSERT INTO ${this.#q}.schema_version (version) VALUES ($1)`, [MIGRATIONS.length]);
      else if (found < MIGRATIONS.length) await client.query(`UPDATE ${this.#q}.schema_version SET version = $1`, [MIGRATIONS.length]);
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      // A connection that failed mid-transaction is not given back to the pool.
      client.release(isOutage(err) ? (err as Error) : undefined);
      throw err;
    }
  }

  #markDown(err: Error): void {
    if (this.#closing || this.#down) return;
    this.#down = true;
    this.#lostWrites = 0;
    this.#logger.warn(
      { postgres: this.#where, err: err.message },
      'postgres cache unreachable: lookups miss the shared cache until it is back (reconnecting)',
    );
  }

  #markUp(): void {
    if (!this.#down) return;
    this.#down = false;
    if (this.#closing) return;
    this.#logger.info({ postgres: this.#where, writesLost: this.#lostWrites }, 'postgres cache reachable again');
    this.#lostWrites = 0;
  }
}

/** True when `a` is a later fetch than `b`: a larger fetchedAt, then a larger id (the upsert's rule). */
function isNewer(a: CacheEntry, b: CacheEntry): boolean {
  return a.fetchedAt !== b.fetchedAt ? a.fetchedAt > b.fetchedAt : a.id > b.id;
}

/** Connection refused/reset/timed out, or a server error of class 08/53/57: the database is not usable now. */
function isOutage(err: unknown): boolean {
  if (err instanceof PostgresSchemaTooNewError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return OUTAGE_SQLSTATE.test(code);
  return true; // node errors (ECONNREFUSED, ...), pg's own timeouts and "Connection terminated"
}

function parsePostgresUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('cache.postgres_url', `not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError('cache.postgres_url', `must start with postgres:// or postgresql:// (got ${url.protocol}//)`);
  }
  return url;
}

function withPassword(url: URL, password: string | undefined): string {
  if (password === undefined) return url.href;
  const copy = new URL(url.href);
  copy.password = encodeURIComponent(password);
  return copy.href;
}

function maskPassword(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password !== '') copy.password = '***';
  return copy.href;
}

/** A PostgreSQL identifier, quoted (PostgreSQL manual §4.1.1: a `"` inside is doubled). */
function quoteIdent(name: string): string {
  if (name === '' || name.includes('\0')) throw new ConfigError('cache.postgres_schema', 'must be a non-empty name');
  return `"${name.replaceAll('"', '""')}"`;
}
