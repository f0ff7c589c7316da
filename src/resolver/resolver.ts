/**
 * The policy lifecycle for every domain: hot tier -> persistent store -> discovery (TXT) -> fetch ->
 * validate -> remember. One resolution per domain at a time (single-flight); answers never wait past the
 * deadline; a cached, unexpired policy is never dropped because DNS or HTTPS failed (RFC 8461 §5.1).
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { CacheEntry, PolicyStore } from '../cache/store.js';
import { StsError } from '../errors.js';
import { RFC8461 } from '../config/defaults.js';
import type { DnsClient } from '../net/dns.js';
import { selectStsRecord } from '../sts/txt.js';
import { parsePolicy } from '../sts/policy.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import type { LookupResult, NoPolicyWhy, PolicyLookup } from './types.js';

export interface ResolverOptions {
  answerDeadlineMs: number;
  negativeTtlMs: number;
  failureRetryMs: number;
  recheckIntervalMs: number;
  dnsFailureTtlMs: number;
  memoryEntries: number;
  maxConcurrentFetches: number;
}

export interface ResolverDeps {
  dns: DnsClient;
  fetcher: { fetch(domain: string): Promise<{ text: string }> };
  store: PolicyStore | null;
  logger: Logger;
  /** Milliseconds since the epoch; injectable so expiry tests need not sleep. */
  now?: () => number;
}

type HotEntry =
  | { kind: 'policy'; entry: CacheEntry; nextCheckAt: number }
  | { kind: 'negative'; why: NoPolicyWhy; error?: StsError; until: number };

export class Resolver implements PolicyLookup {
  private readonly hot: LRUCache<string, HotEntry>;
  private readonly inflight = new Map<string, Promise<LookupResult>>();
  private readonly fetches: ConcurrencyLimit;
  private readonly now: () => number;

  constructor(
    private readonly deps: ResolverDeps,
    private readonly options: ResolverOptions,
  ) {
    this.hot = new LRUCache({ max: options.memoryEntries });
    this.fetches = new ConcurrencyLimit(options.maxConcurrentFetches);
    this.now = deps.now ?? Date.now;
  }

  async lookup(domain: string): Promise<LookupResult> {
    const now = this.now();
    const hot = this.hot.get(domain);
    if (hot?.kind === 'policy') {
      if (now < hot.entry.expiresAt) {
        if (now >= hot.nextCheckAt) this.checkInBackground(domain);
        return { kind: 'policy', domain, entry: hot.entry, source: 'memory' };
      }
      // RFC 8461 §5.1: past max_age the policy is gone; it does not linger while a new one is sought.
      this.hot.delete(domain);
      this.deps.logger.info({ domain, id: hot.entry.id }, 'policy expired');
    } else if (hot?.kind === 'negative' && now < hot.until) {
      return { kind: 'none', domain, why: hot.why, ...(hot.error ? { error: hot.error } : {}) };
    }

    const stored = await this.fromStore(domain, now);
    if (stored) {
      this.remember(stored, Math.max(now, stored.checkedAt + this.options.recheckIntervalMs));
      if (now >= stored.checkedAt + this.options.recheckIntervalMs) this.checkInBackground(domain);
      return { kind: 'policy', domain, entry: stored, source: 'store' };
    }
    return this.withDeadline(domain, this.singleFlight(domain));
  }

  /** Resolve now, ignoring the hot tier's negative entries and recheck pacing (`query`, `cache refresh`). */
  async resolveNow(domain: string): Promise<LookupResult> {
    const hot = this.hot.get(domain);
    if (hot?.kind === 'negative') this.hot.delete(domain);
    if (hot?.kind === 'policy') this.hot.set(domain, { ...hot, nextCheckAt: 0 });
    return this.singleFlight(domain);
  }

  forget(domain: string): void {
    this.hot.delete(domain);
  }

  /** Wait for resolutions under way (shutdown, tests). */
  async settle(): Promise<void> {
    for (let round = 0; round < 10 && this.inflight.size > 0; round++) {
      await Promise.allSettled([...this.inflight.values()]);
    }
  }

  get stats() {
    return { hotEntries: this.hot.size, inflight: this.inflight.size, fetchesActive: this.fetches.active };
  }

  private async fromStore(domain: string, now: number): Promise<CacheEntry | undefined> {
    if (!this.deps.store) return undefined;
    try {
      const entry = await this.deps.store.get(domain);
      return entry && now < entry.expiresAt ? entry : undefined;
    } catch (err) {
      // A store outage degrades to direct resolution, never to an error answer.
      this.deps.logger.debug({ domain, err: (err as Error).message }, 'cache store read failed');
      return undefined;
    }
  }

  private checkInBackground(domain: string): void {
    this.singleFlight(domain).catch(() => undefined);
  }

  private singleFlight(domain: string): Promise<LookupResult> {
    let pending = this.inflight.get(domain);
    if (!pending) {
      pending = this.discover(domain).finally(() => this.inflight.delete(domain));
      this.inflight.set(domain, pending);
    }
    return pending;
  }

  private withDeadline(domain: string, work: Promise<LookupResult>): Promise<LookupResult> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<LookupResult>((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'none', domain, why: 'deadline' }), this.options.answerDeadlineMs);
    });
    return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
  }

  /** One resolution: TXT discovery, then a fetch only when the id is new. Never rejects. */
  private async discover(domain: string): Promise<LookupResult> {
    const cached = this.cachedPolicy(domain);
    let answer;
    try {
      answer = await this.deps.dns.txt(RFC8461.TXT_PREFIX + domain);
    } catch (err) {
      return this.failed(domain, cached, asStsError(err), this.options.dnsFailureTtlMs);
    }
    let selected;
    try {
      selected = answer.kind === 'records' ? selectStsRecord(answer.records) : ({ kind: 'none' } as const);
    } catch (err) {
      return this.noPolicy(domain, cached, 'invalid-record', asStsError(err));
    }
    if (selected.kind === 'none') return this.noPolicy(domain, cached, 'no-record');

    const { id } = selected.record;
    const now = this.now();
    if (cached && cached.id === id) {
      // RFC 8461 §5.1: an unchanged id means the cached policy stands; no fetch.
      const confirmed = { ...cached, checkedAt: now, lastError: null, failures: 0 };
      this.save(confirmed);
      return { kind: 'policy', domain, entry: confirmed, source: 'memory' };
    }

    try {
      const { text } = await this.fetches.run(() => this.deps.fetcher.fetch(domain));
      const policy = parsePolicy(text);
      const fetchedAt = this.now();
      const entry: CacheEntry = {
        domain,
        id,
        policy,
        text,
        fetchedAt,
        expiresAt: fetchedAt + policy.maxAge * 1000,
        checkedAt: fetchedAt,
        lastError: null,
        failures: 0,
      };
      this.save(entry);
      this.deps.logger.info(
        { domain, id, previousId: cached?.id, mode: policy.mode, maxAge: policy.maxAge },
        cached ? 'policy changed' : 'policy learned',
      );
      return { kind: 'policy', domain, entry, source: 'fetch' };
    } catch (err) {
      return this.failed(domain, cached, asStsError(err), this.options.failureRetryMs);
    }
  }

  private cachedPolicy(domain: string): CacheEntry | undefined {
    const hot = this.hot.peek(domain);
    return hot?.kind === 'policy' && this.now() < hot.entry.expiresAt ? hot.entry : undefined;
  }

  /** No usable record. A cached policy stays in force (RFC 8461 §5.1: the TXT record may vanish). */
  private noPolicy(domain: string, cached: CacheEntry | undefined, why: NoPolicyWhy, error?: StsError): LookupResult {
    const now = this.now();
    if (cached) {
      this.remember(cached, now + this.options.recheckIntervalMs);
      return { kind: 'policy', domain, entry: cached, source: 'memory' };
    }
    this.hot.set(domain, { kind: 'negative', why, ...(error ? { error } : {}), until: now + this.options.negativeTtlMs });
    return { kind: 'none', domain, why, ...(error ? { error } : {}) };
  }

  /** Discovery or fetch failed: serve the cached policy if any, and do not try again for `retryMs`. */
  private failed(domain: string, cached: CacheEntry | undefined, error: StsError, retryMs: number): LookupResult {
    const now = this.now();
    this.deps.logger.warn(
      { domain, reason: error.reason, err: error.message, cachedId: cached?.id, mode: cached?.policy.mode },
      cached ? 'policy refresh failed; cached policy stays in force' : 'policy discovery failed',
    );
    if (cached) {
      const entry = {
        ...cached,
        lastError: { reason: error.reason, message: error.message, at: now },
        failures: cached.failures + 1,
      };
      this.save(entry, now + retryMs);
      return { kind: 'policy', domain, entry, source: 'memory' };
    }
    this.hot.set(domain, { kind: 'negative', why: 'failed', error, until: now + retryMs });
    return { kind: 'none', domain, why: 'failed', error };
  }

  private remember(entry: CacheEntry, nextCheckAt: number): void {
    this.hot.set(entry.domain, { kind: 'policy', entry, nextCheckAt });
  }

  private save(entry: CacheEntry, nextCheckAt = entry.checkedAt + this.options.recheckIntervalMs): void {
    this.remember(entry, nextCheckAt);
    this.deps.store?.put(entry).catch((err: unknown) => {
      this.deps.logger.warn({ domain: entry.domain, err: (err as Error).message }, 'cache store write failed');
    });
  }
}

function asStsError(err: unknown): StsError {
  if (err instanceof StsError) return err;
  return new StsError('dns', (err as Error)?.message ?? String(err), { cause: err });
}
