import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_SCHEMA_VERSION, PostgresSchemaTooNewError, PostgresStore, type PostgresStoreOptions } from '../../src/cache/postgres-store.js';
import { openStore } from '../../src/cache/open-store.js';
import type { PolicyStore } from '../../src/cache/store.js';
import { startPostgres, type PostgresLab } from '../lab/postgres.js';
import { eventually, sleep } from '../lab/wait.js';
import { recordingLogger } from './recording-logger.js';
import { CONTRACT_COMMAND_TIMEOUT_MS, describeCacheStore, makeEntry } from './store-contract.js';


let lab: PostgresLab;
let password: string;
/** A plain client for looking at what the store wrote. */
let raw: pg.Pool;

beforeAll(async () => {
  const t0 = performance.now();
  lab = await startPostgres();
  // The lab's start-up time, for the CI budget (docs/operations.md, test/lab/README.md).
  console.log(`postgres lab ready in ${Math.round(performance.now() - t0)} ms`);
  password = readFileSync(lab.passwordFile, 'utf8').trim();
  raw = new pg.Pool({ host: lab.host, port: lab.port, user: lab.user, database: lab.database, password, max: 2 });
  raw.on('error', () => {});
}, 60_000);
afterAll(async () => {
  await raw?.end();
  await lab?.close();
});

/** A store in a schema of its own (each test starts empty). */
function options(schema = `t_${randomUUID().replaceAll('-', '')}`, more: Partial<PostgresStoreOptions> = {}): PostgresStoreOptions {
  return { url: lab.url, password, schema, ...more };
}

describeCacheStore('PostgresStore', async () => {
  const o = options(undefined, { queryTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS, connectTimeoutMs: CONTRACT_COMMAND_TIMEOUT_MS });
  return {
    store: await PostgresStore.open(o),
    reopen: () => PostgresStore.open(o),
    cleanup: async () => {
      await raw.query(`DROP SCHEMA IF EXISTS "${o.schema}" CASCADE`);
    },
  };
}, { leases: true });

describe('PostgresStore', () => {
  it('two daemons writing the same domains in opposite orders end with the newest of each', async () => {
    const o = options();
    const a = await PostgresStore.open(o);
    const b = await PostgresStore.open(o);
    try {
      const versions = (d: string) => Array.from({ length: 10 }, (_, i) => makeEntry(d, { fetchedAt: 1_000 * (i + 1), id: `v${i}` }));
      const domains = Array.from({ length: 20 }, (_, i) => `d${i}.example`);
      await Promise.all(
        domains.flatMap((d) => [
          (async () => { for (const e of versions(d)) await a.put(e); })(),
          (async () => { for (const e of versions(d).reverse()) await b.put(e); })(),
        ]),
      );
      for (const d of domains) expect((await a.get(d))!.id).toBe('v9');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('creates its schema at version POSTGRES_SCHEMA_VERSION once, however many daemons open it at once', async () => {
    const o = options();
    const stores = await Promise.all(Array.from({ length: 5 }, () => PostgresStore.open(o)));
    try {
      const { rows } = await raw.query(`SELECT version FROM "${o.schema}".schema_version`);
      expect(rows).toEqual([{ version: POSTGRES_SCHEMA_VERSION }]);
      await stores[0]!.put(makeEntry('example.com'));
      expect(await stores[4]!.get('example.com')).toStrictEqual(makeEntry('example.com'));
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('refuses a schema version newer than it knows, and writes nothing into it', async () => {
    const o = options();
    (await PostgresStore.open(o)).close();
    await raw.query(`UPDATE "${o.schema}".schema_version SET version = 99`);
    await expect(PostgresStore.open(o)).rejects.toThrow(PostgresSchemaTooNewError);
    await expect(PostgresStore.open(o)).rejects.toThrow(/schema version 99, newer than the 1/);
    const { rows } = await raw.query(`SELECT count(*)::int AS n FROM "${o.schema}".policies`);
    expect(rows[0].n).toBe(0);
  });

  it('a wrong password: open() resolves (logged once), calls reject, the password is not logged', async () => {
    const log = recordingLogger();
    const store = await PostgresStore.open(options(undefined, { password: 'wrong-s3cret', logger: log }));
    try {
      await expect(store.get('example.com')).rejects.toThrow(/password authentication failed/);
      expect(log.lines.map((l) => l.level)).toEqual(['warn']);
      expect(JSON.stringify(log.lines)).not.toContain('s3cret');
    } finally {
      await store.close();
    }
  });

  it('while PostgreSQL is down every call rejects within the connect timeout, logged once; it recovers by itself and says how many writes were lost', { timeout: 60_000 }, async () => {
    const log = recordingLogger();
    const o = options(undefined, { logger: log, connectTimeoutMs: 500 });
    const store = await PostgresStore.open(o);
    try {
      await store.put(makeEntry('kept.example'));
      await lab.stop();
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await expect(store.get('kept.example')).rejects.toThrow();
        expect(performance.now() - t0).toBeLessThan(1_500);
        await expect(store.put(makeEntry(`lost-${i}.example`))).rejects.toThrow();
      }
      await expect(store.tryLease('resolve:kept.example', 'daemon-a', 10_000)).rejects.toThrow();
      await expect(store.releaseLease('resolve:kept.example', 'daemon-a')).resolves.toBeUndefined();
      expect(log.lines.map((l) => l.level)).toEqual(['warn']);
      await lab.restart();
      expect(await eventually(() => store.get('kept.example'), 15_000)).toStrictEqual(makeEntry('kept.example'));
      expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'postgres cache unreachable: lookups miss the shared cache until it is back (reconnecting)'],
        ['info', 'postgres cache reachable again'],
      ]);
      expect(log.lines[1]!.obj).toMatchObject({ writesLost: 3 });
    } finally {
      await store.close();
    }
  });

  it('a database that accepts but never answers makes calls reject after the query timeout, not hang; logged once, and it recovers', { timeout: 60_000 }, async () => {
    const log = recordingLogger();
    const store = await PostgresStore.open(options(undefined, { logger: log, queryTimeoutMs: 500, connectTimeoutMs: 500 }));
    try {
      await store.put(makeEntry('example.com'));
      lab.freeze();
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await expect(store.get('example.com')).rejects.toThrow(/timeout/i);
        expect(performance.now() - t0).toBeLessThan(1_500);
      }
      await expect(store.put(makeEntry('lost.example'))).rejects.toThrow(/timeout/i);
      lab.thaw();
      expect(await eventually(() => store.get('example.com'), 15_000)).toStrictEqual(makeEntry('example.com'));
      expect(log.lines.map((l) => l.level)).toEqual(['warn', 'info']);
      expect(log.lines[1]!.obj).toMatchObject({ writesLost: 1 });
    } finally {
      lab.thaw();
      await store.close();
    }
  });

  it('open() with PostgreSQL down resolves within the connect timeout; the schema is made once it is back', { timeout: 60_000 }, async () => {
    const log = recordingLogger();
    await lab.stop();
    let store: PolicyStore | undefined;
    try {
      const t0 = performance.now();
      store = await PostgresStore.open(options(undefined, { logger: log, connectTimeoutMs: 300 }));
      expect(performance.now() - t0).toBeLessThan(1_500);
      expect(log.lines.map((l) => l.level)).toEqual(['warn']);
      await lab.restart();
      const s = store;
      expect(await eventually(() => s.count(), 15_000)).toBe(0);
      await s.put(makeEntry('example.com'));
      expect(await s.get('example.com')).toStrictEqual(makeEntry('example.com'));
      expect(log.lines.map((l) => l.level)).toEqual(['warn', 'info']);
    } finally {
      await store?.close();
      await lab.restart().catch(() => {});
    }
  });

  it('prune() removes more than one statement deletes (batches), and stops at the limit exactly', async () => {
    const o = options();
    const store = await PostgresStore.open(o);
    try {
      const now = Date.now();
      // Written straight into the table: 2500 expired rows, more than two prune statements take.
      await raw.query(
        `INSERT INTO "${o.schema}".policies (domain, policy_id, fetched_at, expires_at, entry)
         SELECT 'gone-' || i || '.example', 'id', 0, $1::bigint, '{}' FROM generate_series(1, 2500) AS i`,
        [now - 1_000],
      );
      await store.put(makeEntry('live.example', { expiresAt: now + 3_600_000 }));
      expect(await store.prune(now, 2_100)).toBe(2_100);
      expect(await store.prune(now)).toBe(400);
      expect(await store.count()).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('prune() also sweeps lapsed leases, never a held one', async () => {
    const o = options();
    const store = await PostgresStore.open(o);
    try {
      expect(await store.tryLease('resolve:gone.example', 'daemon-a', 50)).toBe(true);
      expect(await store.tryLease('resolve:held.example', 'daemon-a', 60_000)).toBe(true);
      await sleep(100);
      await store.prune(Date.now());
      const { rows } = await raw.query(`SELECT key FROM "${o.schema}".leases ORDER BY key`);
      expect(rows).toEqual([{ key: 'resolve:held.example' }]);
    } finally {
      await store.close();
    }
  });

  it('openStore (store: postgres) takes the password from cache.postgres_password_file; an unreadable file names the key', async () => {
    const config = { store: 'postgres' as const, path: '', redisUrl: '', postgresUrl: lab.url, postgresPasswordFile: lab.passwordFile, postgresPoolMax: 2 };
    const store = await openStore(config, recordingLogger());
    try {
      expect(store.kind).toBe('postgres');
      await store.put(makeEntry('via-open-store.example'));
      expect(await store.get('via-open-store.example')).toStrictEqual(makeEntry('via-open-store.example'));
      expect(await store.delete('via-open-store.example')).toBe(true);
    } finally {
      await store.close();
    }
    await expect(openStore({ ...config, postgresPasswordFile: '/nonexistent/pw' }, recordingLogger())).rejects.toThrow(
      /^cache\.postgres_password_file: cannot read \/nonexistent\/pw: ENOENT/,
    );
  });
});
