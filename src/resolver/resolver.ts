/**
 * The policy lifecycle for every domain: hot tier -> persistent store -> discovery (TXT) -> fetch ->
 * validate -> remember. One resolution per domain at a time (single-flight); answers never wait past the
 * deadline; a cached, unexpired policy is never dropped because DNS or HTTPS failed (RFC 8461 §5.1).
 *
 * Bounds: the hot tier holds at most memoryEntries entries and memoryMaxBytes estimated bytes
 * (src/cache/entry-size.ts), evicted by second chance (./clock-cache.ts); pruneMemory() drops what has expired. At most
 * maxPending resolutions are under way; each holds at most one fetch slot or place in the fetch queue, so
 * the fetch waiters are bounded by the same number. Beyond it a lookup is answered from cache or with no
 * policy at once, and counted.
 *
 * With a store shared by a fleet (one that has leases), a policy fetch takes the fleet lease
 * `resolve:<domain>` and a proactive refresh `refresh:<domain>`, so that a policy host sees one fetch from
 * the whole fleet, not one per daemon (./fleet-lease.ts).
 */
import type { Logger } from 'pino';
import { entryBytes, NEGATIVE_ENTRY_BYTES } from '../cache/entry-size.js';
import type { CacheEntry, PolicyStore } from '../cache/store.js';
import { StsError } from '../errors.js';
import { RFC8461 } from '../sts/rfc8461.js';
import type { DnsClient } from '../net/dns.js';
import { selectStsRecord } from '../sts/txt.js';
import { readPolicy } from '../sts/policy.js';
import type { Deviation } from '../sts/types.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import { FleetLease, leaseOwnerId, storeHasLeases } from './fleet-lease.js';
import type { LookupTier, ResolverObserver } from './observer.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { BoundedMap } from './bounded-map.js';
import { DueQueue } from './due-queue.js';
import { ClockCache } from './clock-cache.js';
import type { LookupResult, NoPolicyWhy, PolicyLookup } from './types.js';

export interface ResolverOptions {
  answerDeadlineMs: number;
  negativeTtlMs: number;
  failureRetryMs: number;
  /** With traffic: a lookup re-checks the TXT id in the background at most this often. */
  recheckIntervalMs: number;
  dnsFailureTtlMs: number;
  memoryEntries: number;
  /** Hot-tier bound in estimated bytes (cache.memory_max_bytes), on top of memoryEntries. */
  memoryMaxBytes: number;
  maxConcurrentFetches: number;
  /**
   * Resolutions under way at once (resolver.max_pending), background re-checks and refreshes included.
   * Beyond it a lookup is answered from cache or with no policy at once.
   */
  maxPending: number;
  /**
   * At most one policy fetch per domain per this interval, whatever the policy's max_age, the id churn or
   * the lookup rate: a policy host cannot make us fetch more often.
   */
  minFetchIntervalMs: number;
  /** Without traffic: the refresher re-checks every cached policy at least this often. */
  refreshIntervalMs: number;
  /** Refetch, even with an unchanged id, once this fraction of max_age has passed. */
  refetchAtFraction: number;
  failureBackoffMaxMs: number;
  /**
   * Fleet leases (a store that has them): how long one lasts unless given back. Default: twice the
   * answer deadline. assembleResolver passes fetch.timeout_ms plus a margin, so a lease outlives its fetch.
   */
  leaseTtlMs?: number;
  /**
   * How long a daemon that did not get `resolve:<domain>` waits for the holder's policy in the store
   * before fetching itself. Default: half the answer deadline, which leaves the other half for its own
   * fetch when the holder died (docs/decisions.md, "Fleet leases").
   */
  leaseWaitMs?: number;
}

export interface ResolverDeps {
  dns: DnsClient;
  fetcher: { fetch(domain: string): Promise<{ text: string }> };
  store: PolicyStore | null;
  logger: Logger;
  observer?: ResolverObserver;
  /** Milliseconds since the epoch; injectable so expiry tests need not sleep. */
  now?: () => number;
  /** This daemon's name in fleet leases; default host:pid:random (fleet-lease.ts leaseOwnerId). */
  leaseOwner?: string;
}

type PolicyHot = Extract<HotEntry, { kind: 'policy' }>;
/** `used` and `bytes` are the tier's own (ClockCache): set when the entry goes in. */
type HotEntry =
  | {
      kind: 'policy';
      used: boolean;
      bytes: number;
      entry: CacheEntry;
      /** A lookup after this triggers a background re-check (traffic-driven). */
      nextCheckAt: number;
      /** The refresher re-checks at this time even without traffic. */
      refreshAt: number;
      /** Position in the refresh queue (DueQueue), -1 when not queued. */
      queueIndex: number;
    }
  | { kind: 'negative'; used: boolean; bytes: number; why: NoPolicyWhy; error?: StsError; until: number };

/** A remembered absence of policy until `until`. */
function absence(why: NoPolicyWhy, until: number, error?: StsError): HotEntry {
  return error ? { kind: 'negative', used: false, bytes: 0, why, error, until } : { kind: 'negative', used: false, bytes: 0, why, until };
}

/** warmFromStore lets pending I/O (answers) run after this many entries (a few milliseconds of work). */
const WARM_BATCH = 1_000;
const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class Resolver implements PolicyLookup {
  private readonly hot: ClockCache<string, HotEntry>;
  /**
   * The hot tier's policies by refresh time: the refresher's due work in O(due × log n), not a scan of
   * the tier (0.8 s at 1M policies). Kept in step with the tier by remember() and the tier's dispose().
   */
  private readonly refreshQueue = new DueQueue<PolicyHot>((hot) => hot.refreshAt);
  /** The hot tier's policies by mode, kept on insert and removal (the /metrics gauge reads it). */
  private readonly modeCounts = { enforce: 0, testing: 0, none: 0 };
  private readonly inflight = new Map<string, Promise<LookupResult>>();
  /** Domains whose last resolution failed, with the reason class: a run of failures is logged once. */
  private readonly failing: BoundedMap<string, string>;
  /** When each domain's policy host was last asked (fetch pacing); bounded like the hot tier. */
  private readonly lastFetchAt: BoundedMap<string, number>;
  private readonly fetches: ConcurrencyLimit;
  private readonly now: () => number;
  private readonly observer: ResolverObserver;
  /** A store that cannot be read is worth a warning, not one per lookup. */
  private readonly storeReadLog: RateLimitedLog;
  /** Lookups turned away at maxPending: one warning per interval, with the count. */
  private readonly overloadLog: RateLimitedLog;
  /** Lookups answered without resolving because maxPending resolutions were under way. */
  private overloadCount = 0;
  /** Fleet leases, when the store is shared and has them. */
  private readonly lease: FleetLease | undefined;
  /** Waits for another daemon's fetch that ended without its result: one line per interval. */
  private readonly leaseTimeoutLog: RateLimitedLog;
  /**
   * Store writes under way, per domain: a lease is given back only after its result is in the store, or
   * the next holder would not see it and fetch again. Bounded by the domains being resolved or written.
   */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(
    private readonly deps: ResolverDeps,
    private readonly options: ResolverOptions,
  ) {
    this.hot = new ClockCache<string, HotEntry>({
      maxEntries: options.memoryEntries,
      maxBytes: options.memoryMaxBytes,
      bytesOf: (hot, domain) => (hot.kind === 'policy' ? entryBytes(hot.entry) : NEGATIVE_ENTRY_BYTES + domain.length),
      // Every way out of the tier (evicted, deleted, replaced, cleared) passes here.
      dispose: (hot) => {
        if (hot.kind !== 'policy') return;
        this.refreshQueue.remove(hot);
        this.modeCounts[hot.entry.policy.mode]--;
      },
    });
    this.fetches = new ConcurrencyLimit(options.maxConcurrentFetches);
    // Bounded like the hot tier, and like it grown as used (issue 12).
    this.lastFetchAt = new BoundedMap(options.memoryEntries);
    this.failing = new BoundedMap(options.memoryEntries);
    this.now = deps.now ?? Date.now;
    this.observer = deps.observer ?? {};
    this.storeReadLog = new RateLimitedLog(this.now);
    this.overloadLog = new RateLimitedLog(this.now);
    this.leaseTimeoutLog = new RateLimitedLog(this.now);
    const store = deps.store;
    if (storeHasLeases(store)) {
      const domainOf = (key: string) => key.slice(key.indexOf(':') + 1);
      const waitMs = options.leaseWaitMs ?? Math.floor(options.answerDeadlineMs / 2);
      this.lease = new FleetLease(
        store,
        deps.leaseOwner ?? leaseOwnerId(),
        { ttlMs: options.leaseTtlMs ?? 2 * options.answerDeadlineMs, waitMs },
        {
          wait: (key) => this.observer.leaseWait?.(domainOf(key)),
          // The store reports its own outages (once per run); this is for a close look.
          unavailable: (key) => this.deps.logger.debug({ lease: key }, 'fleet lease store unreachable: working without the lease'),
          timeout: (key) => {
            this.observer.leaseTimeout?.(domainOf(key));
            const suppressed = this.leaseTimeoutLog.take();
            if (suppressed === undefined) return;
            // News, not trouble: a holder died or is slow. Only a fleet that keeps saying it needs a look.
            this.deps.logger.info(
              { lease: key, waitMs, suppressed },
              "another daemon's fetch brought no result within the wait: fetching without the fleet lease",
            );
          },
        },
      );
    }
  }

  async lookup(domain: string): Promise<LookupResult> {
    const hit = this.lookupHot(domain);
    if (hit !== undefined) return hit;

    const now = this.now();
    const stored = await this.fromStore(domain, now);
    if (stored) {
      this.remember(stored, Math.max(now, stored.checkedAt + this.options.recheckIntervalMs));
      if (now >= stored.checkedAt + this.options.recheckIntervalMs) this.checkInBackground(domain);
      return this.report({ kind: 'policy', domain, entry: stored, source: 'store' }, 'store');
    }
    const pending = this.singleFlight(domain);
    if (pending === undefined) return this.report(this.turnedAway(domain), 'overload');
    return this.report(await this.withDeadline(domain, pending), 'resolve');
  }

  /**
   * The answer of the memory tier alone, without waiting: an unexpired policy (starting the background
   * re-check when one is due) or an unexpired negative entry. Undefined when the store or a resolution
   * must answer: then lookup() does. Reported to the observer exactly as lookup() reports it; lookup()
   * begins with this, so a caller that tries this first and then lookup() gets the same answers.
   */
  lookupHot(domain: string): LookupResult | undefined {
    const hot = this.hot.get(domain);
    if (hot === undefined) return undefined;
    const now = this.now();
    if (hot.kind === 'policy') {
      if (now < hot.entry.expiresAt) {
        if (now >= hot.nextCheckAt) this.checkInBackground(domain);
        return this.report({ kind: 'policy', domain, entry: hot.entry, source: 'memory' }, 'memory');
      }
      // RFC 8461 §5.1: past max_age the policy is gone; it does not linger while a new one is sought.
      this.dropExpired(domain, hot.entry);
      return undefined;
    }
    if (now >= hot.until) return undefined;
    const none: LookupResult = hot.error
      ? { kind: 'none', domain, why: hot.why, error: hot.error }
      : { kind: 'none', domain, why: hot.why };
    return this.report(none, 'negative');
  }

  /** Resolve now, ignoring negative entries and recheck pacing (`query`, `cache refresh`). */
  async resolveNow(domain: string): Promise<LookupResult> {
    const hot = this.hot.get(domain);
    if (hot?.kind === 'negative') this.hot.delete(domain);
    return this.singleFlight(domain) ?? this.turnedAway(domain);
  }

  /**
   * Re-check one cached domain (the refresher's entry point). Never rejects. At maxPending it starts
   * nothing and answers from the hot tier: the domain stays due and is offered again at the next tick.
   */
  refresh(domain: string): Promise<LookupResult> {
    const lease = this.lease;
    const pending = this.singleFlight(domain, lease ? () => this.refreshInFleet(domain, lease) : undefined);
    if (pending !== undefined) return pending;
    const cached = this.cachedPolicy(domain);
    return Promise.resolve(cached ? { kind: 'policy', domain, entry: cached, source: 'memory' } : { kind: 'none', domain, why: 'overload' });
  }

  /**
   * Drop what has expired from the memory tier: policies past max_age (RFC 8461 §5.1: never used
   * again), negative entries past their time, fetch-pacing marks older than minFetchIntervalMs. Bounded
   * by the tier's size (memoryEntries). Returns the number of policies dropped.
   */
  pruneMemory(now = this.now()): number {
    const expired: string[] = [];
    let policies = 0;
    for (const [domain, hot] of this.hot.entries()) {
      if (hot.kind === 'policy' ? now >= hot.entry.expiresAt : now >= hot.until) {
        expired.push(domain);
        if (hot.kind === 'policy') policies++;
      }
    }
    for (const domain of expired) {
      const hot = this.hot.peek(domain);
      this.hot.delete(domain);
      if (hot?.kind === 'policy') this.observer.policy?.(domain, undefined);
    }
    const paced: string[] = [];
    for (const [domain, at] of this.lastFetchAt.entries()) if (now >= at + this.options.minFetchIntervalMs) paced.push(domain);
    for (const domain of paced) this.lastFetchAt.delete(domain);
    return policies;
  }

  /** Cached domains whose proactive refresh is due, soonest first, at most `limit`. */
  dueForRefresh(limit: number): string[] {
    return this.refreshQueue.due(this.now(), limit, (hot) => !this.inflight.has(hot.entry.domain)).map((hot) => hot.entry.domain);
  }

  /**
   * Fill the hot tier from the persistent store (start-up), without waiting on the network. Answers do
   * not wait for this: a hot-tier miss reads the store directly.
   */
  async warmFromStore(): Promise<number> {
    if (!this.deps.store) return 0;
    const now = this.now();
    let loaded = 0;
    let seen = 0;
    for await (const entry of this.deps.store.list()) {
      if (loaded >= this.options.memoryEntries) break;
      // An async iterator of a synchronous store (sqlite) resumes in microtasks only, so without this the
      // whole load would run before the first socket is read: let I/O in between batches.
      if (++seen % WARM_BATCH === 0) await yieldToIo();
      if (now >= entry.expiresAt || this.hot.has(entry.domain)) continue;
      // Full in bytes: loading more would only evict what was just loaded (the store still answers).
      if (this.hot.calculatedSize + entryBytes(entry) > this.options.memoryMaxBytes) break;
      this.remember(entry, entry.checkedAt + this.options.recheckIntervalMs);
      loaded++;
    }
    return loaded;
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

  /** Cached policies by mode in the hot tier (for metrics): kept on insert and removal, not counted here. */
  policyCounts(): Record<'enforce' | 'testing' | 'none', number> {
    return { ...this.modeCounts };
  }

  get stats() {
    return {
      hotEntries: this.hot.size,
      /** Estimated bytes of the hot tier (never above memoryMaxBytes). */
      hotBytes: this.hot.calculatedSize,
      inflight: this.inflight.size,
      fetchesActive: this.fetches.active,
      fetchesQueued: this.fetches.queued,
      /** Lookups answered without resolving at maxPending, since start. */
      overloaded: this.overloadCount,
    };
  }

  private report(result: LookupResult, tier: LookupTier): LookupResult {
    this.observer.lookup?.(result, tier);
    return result;
  }

  private dropExpired(domain: string, entry: CacheEntry): void {
    this.hot.delete(domain);
    this.deps.logger.info({ domain, id: entry.id }, 'policy expired');
    this.observer.policy?.(domain, undefined);
  }

  private async fromStore(domain: string, now: number): Promise<CacheEntry | undefined> {
    if (!this.deps.store) return undefined;
    try {
      const entry = await this.deps.store.get(domain);
      return entry && now < entry.expiresAt ? entry : undefined;
    } catch (err) {
      // A store outage degrades to direct resolution, never to an error answer. It is news (an I/O error
      // under sqlite, Redis away), but one line per lookup would drown the log: one per interval.
      const suppressed = this.storeReadLog.take();
      const fields = { domain, store: this.deps.store.kind, err: (err as Error)?.message ?? String(err) };
      if (suppressed === undefined) this.deps.logger.debug(fields, 'cache store read failed');
      else this.deps.logger.warn({ ...fields, suppressed }, 'cache store read failed; resolving without it');
      return undefined;
    }
  }

  private checkInBackground(domain: string): void {
    // At maxPending nothing starts; nextCheckAt stays due, so a later lookup tries again.
    void this.singleFlight(domain);
  }

  /**
   * The resolution under way for `domain`, or a new one; undefined when none is under way and maxPending
   * already are (nothing is started). The promise never rejects.
   */
  private singleFlight(domain: string, work = () => this.discover(domain)): Promise<LookupResult> | undefined {
    let pending = this.inflight.get(domain);
    if (!pending) {
      if (this.inflight.size >= this.options.maxPending) return undefined;
      pending = work()
        .catch((err: unknown) => this.internalFailure(domain, err))
        .finally(() => this.inflight.delete(domain));
      this.inflight.set(domain, pending);
    }
    return pending;
  }

  /** No resolution could start (maxPending under way): no policy at once, counted and logged (rate-limited). */
  private turnedAway(domain: string): LookupResult {
    this.overloadCount++;
    this.observer.overload?.(domain);
    const suppressed = this.overloadLog.take();
    if (suppressed !== undefined) {
      this.deps.logger.warn(
        { domain, maxPending: this.options.maxPending, suppressed },
        'resolver.max_pending resolutions under way: answering from cache or with no policy, without resolving',
      );
    }
    return { kind: 'none', domain, why: 'overload' };
  }

  /**
   * An exception nothing expected (a bug): reason class `internal`, logged at error level with its
   * stack, counted like any fetch outcome, and answered like any failure.
   */
  private internalFailure(domain: string, err: unknown): LookupResult {
    const error = this.asStsError(domain, err);
    this.observer.fetch?.(error.reason, domain);
    try {
      return this.failed(domain, this.cachedPolicy(domain), error, this.options.failureRetryMs);
    } catch {
      return { kind: 'none', domain, why: 'failed', error };
    }
  }

  /** A typed failure as is; anything else is `internal`, logged at error level with its stack. */
  private asStsError(domain: string, err: unknown): StsError {
    if (err instanceof StsError) return err;
    const message = err instanceof Error ? err.message : String(err);
    this.deps.logger.error(
      // pino's err serializer writes the stack (and the pretty form prints it indented below the line).
      { domain, reason: 'internal', err: err instanceof Error ? err : new Error(message) },
      'unexpected exception in a resolution',
    );
    return new StsError('internal', message, { cause: err });
  }

  private withDeadline(domain: string, work: Promise<LookupResult>): Promise<LookupResult> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<LookupResult>((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'none', domain, why: 'deadline' }), this.options.answerDeadlineMs);
    });
    return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
  }

  /** One resolution: TXT discovery, then a fetch when the id is new or the policy is due. Never rejects. */
  private async discover(domain: string): Promise<LookupResult> {
    const cached = this.cachedPolicy(domain);
    let answer;
    try {
      answer = await this.deps.dns.txt(RFC8461.TXT_PREFIX + domain);
    } catch (err) {
      const error = this.asStsError(domain, err);
      this.observer.fetch?.(error.reason, domain);
      return this.failed(domain, cached, error, error.reason === 'internal' ? this.options.failureRetryMs : this.options.dnsFailureTtlMs);
    }
    let selected;
    try {
      selected = answer.kind === 'records' ? selectStsRecord(answer.records) : ({ kind: 'none' } as const);
    } catch (err) {
      // A bug in the TXT rules is not "no record": it is a failure like any other (and logged as one).
      if (!(err instanceof StsError)) return this.internalFailure(domain, err);
      return this.noPolicy(domain, cached, 'invalid-record', err);
    }
    if (selected.kind === 'none') return this.noPolicy(domain, cached, 'no-record');

    const { id } = selected.record;
    const now = this.now();
    if (cached && cached.id === id && now < this.refetchAt(cached)) {
      // RFC 8461 §5.1: an unchanged id means the cached policy stands; no fetch.
      const confirmed = { ...cached, checkedAt: now, lastError: null, failures: 0 };
      this.recovered(domain);
      this.save(confirmed);
      this.observer.refresh?.('unchanged', domain);
      return { kind: 'policy', domain, entry: confirmed, source: 'memory' };
    }

    const paceUntil = (this.lastFetchAt.get(domain) ?? -Infinity) + this.options.minFetchIntervalMs;
    if (now < paceUntil) return this.paced(domain, cached, paceUntil);
    if (!this.lease) return this.fetchPolicy(domain, id, cached);

    const claimed = await this.lease.claim(`resolve:${domain}`, () => this.fleetPolicy(domain, id, cached));
    if (claimed.kind === 'result') return this.adopt(domain, cached, claimed.entry);
    try {
      return await this.fetchPolicy(domain, id, cached);
    } finally {
      if (claimed.kind === 'held') await this.releaseAfterWrite(domain, claimed.release);
    }
  }

  /** Fetch, validate and remember the policy for TXT id `id`. Never rejects. */
  private async fetchPolicy(domain: string, id: string, cached: CacheEntry | undefined): Promise<LookupResult> {
    this.lastFetchAt.set(domain, this.now());
    let entry: CacheEntry;
    let deviations: Deviation[];
    try {
      const { text } = await this.fetches.run(() => this.deps.fetcher.fetch(domain));
      const parsed = readPolicy(text);
      const { policy } = parsed;
      deviations = parsed.deviations;
      const fetchedAt = this.now();
      entry = {
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
    } catch (err) {
      const error = this.asStsError(domain, err);
      this.observer.fetch?.(error.reason, domain);
      return this.failed(domain, cached, error, this.options.failureRetryMs, id);
    }
    this.observer.fetch?.('ok', domain);
    this.recovered(domain);
    this.save(entry);
    this.observer.policy?.(domain, entry.policy.mode);
    if (cached) this.observer.refresh?.(cached.id === id ? 'unchanged' : 'changed', domain);
    if (!cached || cached.id !== id || cached.text !== entry.text) {
      this.deps.logger.info(
        { domain, id, previousId: cached?.id, mode: entry.policy.mode, maxAge: entry.policy.maxAge },
        cached ? 'policy changed' : 'policy learned',
      );
      if (deviations.length > 0) this.deviated(domain, id, deviations);
    }
    return { kind: 'policy', domain, entry, source: 'fetch' };
  }

  /**
   * A proactive refresh in a fleet: when another daemon has checked the policy since we did, its result
   * in the store is taken as ours (no DNS, no fetch); when another daemon is refreshing it right now
   * (`refresh:<domain>` held), ours is put off by one lease's time, by when that result is in the store.
   * Otherwise this daemon refreshes, holding the lease. Never rejects.
   */
  private async refreshInFleet(domain: string, lease: FleetLease): Promise<LookupResult> {
    const cached = this.cachedPolicy(domain);
    if (!cached) return this.discover(domain);
    const claimed = await lease.tryOnce(`refresh:${domain}`, () => this.newerInStore(domain, cached));
    switch (claimed.kind) {
      case 'result':
        return this.adopt(domain, cached, claimed.entry);
      case 'busy': {
        // The holder may only be looking at the store too: what it would find, we can take.
        const newer = await this.newerInStore(domain, cached).catch(() => undefined);
        if (newer) return this.adopt(domain, cached, newer);
        const hot = this.hot.peek(domain);
        const nextCheckAt = hot?.kind === 'policy' ? hot.nextCheckAt : cached.checkedAt + this.options.recheckIntervalMs;
        this.remember(cached, nextCheckAt, this.now() + lease.ttlMs);
        return { kind: 'policy', domain, entry: cached, source: 'memory' };
      }
      case 'held':
        try {
          return await this.discover(domain);
        } finally {
          await this.releaseAfterWrite(domain, claimed.release);
        }
      default:
        return this.discover(domain);
    }
  }

  /**
   * What another daemon fetched for TXT id `id` and wrote to the store: the policy with that id, not yet
   * due for a refetch itself, and fetched after `cached` (a refetch of an unchanged id must be newer).
   */
  private async fleetPolicy(domain: string, id: string, cached: CacheEntry | undefined): Promise<CacheEntry | undefined> {
    const stored = await this.deps.store?.get(domain);
    if (stored === undefined || stored.id !== id) return undefined;
    const now = this.now();
    if (now >= stored.expiresAt || now >= this.refetchAt(stored)) return undefined;
    if (cached && stored.fetchedAt <= cached.fetchedAt) return undefined;
    return stored;
  }

  /** The store's entry when another daemon checked the policy after `cached` was checked. */
  private async newerInStore(domain: string, cached: CacheEntry): Promise<CacheEntry | undefined> {
    const stored = await this.deps.store?.get(domain);
    if (stored === undefined || stored.checkedAt <= cached.checkedAt || this.now() >= stored.expiresAt) return undefined;
    return stored;
  }

  /** Another daemon's result, taken as ours: remembered, reported as a fleet hit. */
  private adopt(domain: string, cached: CacheEntry | undefined, entry: CacheEntry): LookupResult {
    this.recovered(domain);
    this.remember(entry, entry.checkedAt + this.options.recheckIntervalMs);
    this.observer.fleetHit?.(domain);
    if (cached) this.observer.refresh?.(cached.id === entry.id ? 'unchanged' : 'changed', domain);
    if (!cached || cached.fetchedAt !== entry.fetchedAt) this.observer.policy?.(domain, entry.policy.mode);
    this.deps.logger.debug({ domain, id: entry.id, previousId: cached?.id }, 'policy taken from the shared store (another daemon fetched it)');
    return { kind: 'policy', domain, entry, source: 'store' };
  }

  /** Gives a lease back once this daemon's write of the domain (if any) is in the store. */
  private async releaseAfterWrite(domain: string, release: () => Promise<void>): Promise<void> {
    await this.writes.get(domain);
    await release();
  }

  /**
   * A policy accepted only by forgiving deviations from RFC 8461 §3.2: one warning per domain and policy id
   * (the caller logs only a new id or body), and each rule counted once, so that operators see how many
   * domains rely on the leniency and domain owners can be told (strict senders treat it as no policy).
   */
  private deviated(domain: string, id: string, deviations: readonly Deviation[]): void {
    const rules = [...new Set(deviations.map((d) => d.rule))];
    this.deps.logger.warn(
      { domain, id, deviations: deviations.map((d) => `${d.rule}:${d.line}`) },
      'policy accepted with deviations from RFC 8461 §3.2 (strict senders refuse it)',
    );
    for (const rule of rules) this.observer.deviation?.(rule, domain);
  }

  private refetchAt(entry: CacheEntry): number {
    return entry.fetchedAt + (entry.expiresAt - entry.fetchedAt) * this.options.refetchAtFraction;
  }

  private cachedPolicy(domain: string): CacheEntry | undefined {
    const hot = this.hot.peek(domain);
    return hot?.kind === 'policy' && this.now() < hot.entry.expiresAt ? hot.entry : undefined;
  }

  /** No usable record. A cached policy stays in force (RFC 8461 §5.1: the TXT record may vanish). */
  private noPolicy(domain: string, cached: CacheEntry | undefined, why: NoPolicyWhy, error?: StsError): LookupResult {
    const now = this.now();
    this.recovered(domain);
    if (cached) {
      this.remember(cached, now + this.options.recheckIntervalMs);
      this.observer.refresh?.('no-record', domain);
      return { kind: 'policy', domain, entry: cached, source: 'memory' };
    }
    this.hot.set(domain, absence(why, now + this.options.negativeTtlMs, error));
    return { kind: 'none', domain, why, ...(error ? { error } : {}) };
  }

  /**
   * A fetch is due but the domain's policy host was asked less than minFetchIntervalMs ago (a max_age
   * shorter than the interval, or an id that keeps changing): keep a cached policy, else no policy until
   * then. Never an expired policy.
   */
  private paced(domain: string, cached: CacheEntry | undefined, until: number): LookupResult {
    if (cached) {
      this.remember(cached, until);
      return { kind: 'policy', domain, entry: cached, source: 'memory' };
    }
    this.hot.set(domain, absence('paced', until));
    return { kind: 'none', domain, why: 'paced' };
  }

  /**
   * Discovery or fetch failed: serve the cached policy if any, and back off before the next try. `id` is
   * the TXT id whose policy could not be fetched (absent when discovery itself failed), for the log.
   */
  private failed(domain: string, cached: CacheEntry | undefined, error: StsError, retryMs: number, id?: string): LookupResult {
    const now = this.now();
    if (cached) {
      const failures = cached.failures + 1;
      const entry = { ...cached, lastError: { reason: error.reason, message: error.message, at: now }, failures };
      // RFC 8461 §10.2 asks senders to alert on refresh failures: a warning per failure of a policy that
      // matters (enforce/testing), with the reason; a failing `none` policy is only news.
      const level = this.firstOfRun(domain, error) ? (cached.policy.mode === 'none' ? 'info' : 'warn') : 'debug';
      this.deps.logger[level](
        { domain, id, reason: error.reason, err: error.message, cachedId: cached.id, mode: cached.policy.mode, failures },
        'policy refresh failed; cached policy stays in force',
      );
      const backoff = Math.min(retryMs * 2 ** Math.min(failures - 1, 20), Math.max(retryMs, this.options.failureBackoffMaxMs));
      this.save(entry, now + retryMs, now + backoff);
      this.observer.refresh?.('failed', domain);
      return { kind: 'policy', domain, entry, source: 'memory' };
    }
    this.deps.logger[this.firstOfRun(domain, error) ? 'warn' : 'debug'](
      { domain, id, reason: error.reason, err: error.message },
      'policy discovery failed',
    );
    this.hot.set(domain, absence('failed', now + retryMs, error));
    return { kind: 'none', domain, why: 'failed', error };
  }

  /**
   * True for the first failure of a run with this reason class: a DNS outage or a broken policy host is
   * logged once per domain when it starts (and again if the reason changes), repeats go to debug, and the
   * end of the run is one info line (recovered()).
   */
  private firstOfRun(domain: string, error: StsError): boolean {
    const first = this.failing.get(domain) !== error.reason;
    this.failing.set(domain, error.reason);
    return first;
  }

  private recovered(domain: string): void {
    const reason = this.failing.get(domain);
    if (reason === undefined) return;
    this.failing.delete(domain);
    this.deps.logger.info({ domain, after: reason }, 'policy discovery works again');
  }

  private remember(entry: CacheEntry, nextCheckAt: number, refreshAt = this.proactiveRefreshAt(entry)): void {
    const hot: PolicyHot = { kind: 'policy', used: false, bytes: 0, entry, nextCheckAt, refreshAt, queueIndex: -1 };
    // A policy larger than the tier's byte bound is not kept: queue only what is in.
    if (!this.hot.set(entry.domain, hot)) return;
    this.refreshQueue.add(hot);
    this.modeCounts[entry.policy.mode]++;
  }

  /** The earlier of "checked a day ago" and "half of max_age gone", spread by up to 10% (jitter). */
  private proactiveRefreshAt(entry: CacheEntry): number {
    const byInterval = entry.checkedAt + this.options.refreshIntervalMs;
    const at = Math.min(byInterval, this.refetchAt(entry));
    const span = Math.max(0, at - entry.checkedAt);
    return at - Math.floor(Math.random() * span * 0.1);
  }

  private save(entry: CacheEntry, nextCheckAt = entry.checkedAt + this.options.recheckIntervalMs, refreshAt?: number): void {
    this.remember(entry, nextCheckAt, refreshAt);
    // Each store reports its own write failures once per run (sqlite: a failed commit; redis: an outage,
    // with the writes lost counted at its end), so one line per failed write here would only repeat them.
    if (!this.deps.store) return;
    const { domain } = entry;
    const write = this.deps.store.put(entry).catch((err: unknown) => {
      this.deps.logger.debug({ domain, err: (err as Error)?.message ?? String(err) }, 'cache store write failed');
    });
    if (!this.lease) return;
    const tracked = write.finally(() => {
      if (this.writes.get(domain) === tracked) this.writes.delete(domain);
    });
    this.writes.set(domain, tracked);
  }
}
