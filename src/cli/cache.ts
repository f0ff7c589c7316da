/**
 * `mta-sts-sidecar cache list|show|forget|refresh|export`: the configured store, read and changed from
 * the command line, also while the daemon runs (sqlite in WAL mode, Redis and PostgreSQL allow a second client).
 * A running daemon keeps its own in-memory copy: `forget` takes effect there at its next restart or
 * re-check, `refresh` at its next re-check (docs/decisions.md).
 */
import { pino } from 'pino';
import type { Config } from '../config/schema.js';
import type { CacheEntry, PolicyStore } from '../cache/store.js';
import { openStore, storeConfigOf } from '../cache/open-store.js';
import { patternText } from '../sts/mx.js';
import { normalizeDomainKey } from '../sts/domain.js';

type Out = (line: string) => void;

export interface CacheCommandOptions {
  json: boolean;
}

async function withStore<T>(config: Config, work: (store: PolicyStore) => Promise<T>): Promise<T> {
  // Store problems (corrupt file moved aside, Redis down) go to stderr as one line each, not as JSON logs.
  const logger = pino({ level: 'warn' }, pino.destination(2));
  // The daemon's own mapping: Sentinel, Cluster, PostgreSQL and password files work here too.
  const store = await openStore(storeConfigOf(config), logger);
  try {
    return await work(store);
  } finally {
    await store.flush();
    await store.close();
  }
}

function domainArg(key: string): string {
  const k = normalizeDomainKey(key);
  if (k.kind !== 'domain') throw new Error(`not a domain: ${JSON.stringify(key)}${k.kind === 'invalid' ? ` (${k.why})` : ''}`);
  return k.domain;
}

/** The entry as JSON for scripts: times as ISO strings, mx patterns in RFC text form. */
function entryJson(e: CacheEntry) {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    domain: e.domain,
    id: e.id,
    mode: e.policy.mode,
    maxAge: e.policy.maxAge,
    mx: e.policy.mx.map(patternText),
    fetchedAt: iso(e.fetchedAt),
    expiresAt: iso(e.expiresAt),
    checkedAt: iso(e.checkedAt),
    lastError: e.lastError ? { ...e.lastError, at: iso(e.lastError.at) } : null,
    failures: e.failures,
    text: e.text,
  };
}

export async function cacheList(config: Config, opts: CacheCommandOptions, out: Out): Promise<number> {
  return withStore(config, async (store) => {
    const entries: CacheEntry[] = [];
    for await (const e of store.list()) entries.push(e);
    entries.sort((a, b) => a.domain.localeCompare(b.domain));
    if (opts.json) {
      out(JSON.stringify(entries.map(entryJson), null, 2));
      return 0;
    }
    const now = Date.now();
    out(['DOMAIN', 'MODE', 'ID', 'EXPIRES', 'FAILURES'].join('\t'));
    for (const e of entries) {
      const expires = e.expiresAt <= now ? 'expired' : new Date(e.expiresAt).toISOString();
      out([e.domain, e.policy.mode, e.id, expires, String(e.failures)].join('\t'));
    }
    return 0;
  });
}

export async function cacheShow(config: Config, key: string, opts: CacheCommandOptions, out: Out): Promise<number> {
  const domain = domainArg(key);
  return withStore(config, async (store) => {
    const e = await store.get(domain);
    if (!e) {
      if (opts.json) out(JSON.stringify({ domain, cached: false }));
      else out(`${domain}: not cached`);
      return 1;
    }
    const j = entryJson(e);
    if (opts.json) {
      out(JSON.stringify(j, null, 2));
    } else {
      const { text, lastError, ...rest } = j;
      for (const [k, v] of Object.entries(rest)) out(`${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`);
      out(`lastError: ${lastError ? `${lastError.reason} at ${lastError.at}: ${lastError.message}` : 'none'}`);
      out('policy:');
      for (const line of text.split(/\r?\n/)) if (line) out(`  ${line}`);
    }
    return 0;
  });
}

export async function cacheForget(config: Config, key: string, out: Out): Promise<number> {
  const domain = domainArg(key);
  return withStore(config, async (store) => {
    const removed = await store.delete(domain);
    out(removed ? `${domain}: forgotten` : `${domain}: not cached`);
    return removed ? 0 : 1;
  });
}

/** Resolve now with the configured DNS and fetch settings and store the result. */
export async function cacheRefresh(config: Config, key: string, opts: CacheCommandOptions, out: Out): Promise<number> {
  const domain = domainArg(key);
  return withStore(config, async (store) => {
    // Only `refresh` resolves: the network stack (undici, DNS) is loaded for it alone.
    const { assembleResolver } = await import('../resolver/assemble.js');
    const { resolver, fetcher } = assembleResolver(config, store, pino({ level: 'silent' }));
    try {
      // Seed the resolver with what the store has, so an unchanged id is confirmed without a refetch.
      if (await store.get(domain)) await resolver.lookup(domain);
      const r = await resolver.resolveNow(domain);
      await resolver.settle();
      if (opts.json) {
        out(JSON.stringify(r.kind === 'policy' ? { result: 'policy', ...entryJson(r.entry) } : { result: 'none', domain, why: r.why, error: r.error ? { reason: r.error.reason, message: r.error.message } : null }, null, 2));
      } else if (r.kind === 'policy') {
        out(`${domain}: ${r.entry.policy.mode} policy, id ${r.entry.id}${r.entry.lastError ? ` (refresh failed: ${r.entry.lastError.reason}: ${r.entry.lastError.message}; cached policy kept)` : ''}`);
      } else {
        out(`${domain}: no policy (${r.why}${r.error ? `: ${r.error.reason}: ${r.error.message}` : ''})`);
      }
      return r.kind === 'policy' && !r.entry.lastError ? 0 : r.kind === 'none' && r.why === 'no-record' ? 0 : 1;
    } finally {
      await fetcher.close();
    }
  });
}

/** Every entry as JSON lines (--json: one JSON array), for backups and moving between stores. */
export async function cacheExport(config: Config, opts: CacheCommandOptions, out: Out): Promise<number> {
  return withStore(config, async (store) => {
    if (opts.json) {
      const all: unknown[] = [];
      for await (const e of store.list()) all.push(entryJson(e));
      out(JSON.stringify(all, null, 2));
    } else {
      for await (const e of store.list()) out(JSON.stringify(e));
    }
    return 0;
  });
}
