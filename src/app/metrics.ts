/**
 * Prometheus metrics: one registry per daemon, fed by the resolver (through ResolverObserver), by the
 * protocol handlers (answers by class and zone, answer latency) and, at scrape time, by gauges that ask
 * the live objects (policies by mode, open connections). Every label has a closed set of values: zone
 * names come from the config, never from a request, so a client cannot grow the series count.
 */
import type { Metric, Registry } from 'prom-client';
import { REASONS } from '../errors.js';
import { DANE_ONLY_REPLY, DANE_REPLY } from '../answer/postfix.js';
import { DANE_OUTCOMES, type DaneObserver } from '../resolver/dane.js';
import type { FetchOutcome, LookupTier, RefreshOutcome, ResolverObserver } from '../resolver/observer.js';
import type { StoreObserver } from '../cache/observed-store.js';
import type { LookupResult } from '../resolver/types.js';
import { KEY_SKIP_REASONS, type KeySkipReason } from '../sts/domain.js';
import { DEVIATION_RULES } from '../sts/types.js';
import type { EximHandler } from '../server/exim/session.js';
import type { SocketmapHandler } from '../server/postfix/session.js';

export const METRIC_PREFIX = 'mta_sts_sidecar_';
/** prom-client's Registry.PROMETHEUS_CONTENT_TYPE (text format 0.0.4), before prom-client is loaded. */
const PROMETHEUS_TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * What a reply told the MTA, from its first word (socketmap(5): OK, NOTFOUND, PERM, TEMP); an `OK` that
 * leaves the domain to Postfix's own DANE (issue 16) is `dane-only` or `dane`.
 */
export type AnswerClass = 'secure' | 'notfound' | 'perm' | 'temp' | 'dane-only' | 'dane';
export const ANSWER_CLASSES: readonly AnswerClass[] = ['secure', 'notfound', 'perm', 'temp', 'dane-only', 'dane'];
export const FETCH_OUTCOMES: readonly FetchOutcome[] = ['ok', ...(Object.keys(REASONS) as FetchOutcome[])];
export const REFRESH_OUTCOMES: readonly RefreshOutcome[] = ['unchanged', 'changed', 'failed', 'no-record'];
export const CACHE_TIERS = ['memory', 'store'] as const;
export type CacheTier = (typeof CACHE_TIERS)[number];
const MODES = ['enforce', 'testing', 'none'] as const;

/**
 * Answer latency buckets in seconds. A hot-tier answer takes well under a millisecond, a store read a
 * few, a resolution up to resolver.answer_deadline_ms (10 s by default): fine steps below 1 ms, coarse above.
 */
export const ANSWER_SECONDS_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];


/** Where scrape-time gauges read their values; each may change over the daemon's life (reload). */
export interface MetricSources {
  policyCounts?: () => Record<(typeof MODES)[number], number>;
  /** Open connections per protocol (`socketmap`, `http`, ...). */
  connections?: () => Record<string, number>;
  /** Whether the resolver validates DNSSEC (DANE looked up): 1, else 0. */
  dnssecValidating?: () => boolean;
}

export interface MetricsOptions {
  /** Also export prom-client's process and Node.js runtime metrics (default true). */
  processMetrics?: boolean;
}

/** The zone label of Exim answers: the Exim protocol has no map names, so no zones. */
export const EXIM_ZONE = 'default';

/** The first word of a reply decides its class; anything unexpected counts as temp (a failure). */
export function answerClass(reply: string): AnswerClass {
  if (reply === DANE_ONLY_REPLY) return 'dane-only';
  if (reply === DANE_REPLY) return 'dane';
  if (reply.startsWith('OK ') || reply === 'OK') return 'secure';
  if (reply.startsWith('NOTFOUND')) return 'notfound';
  if (reply.startsWith('PERM')) return 'perm';
  return 'temp';
}

/**
 * Cache hits and misses per tier, from the tier that answered a lookup: the memory (hot) tier holds
 * policies and remembered absences; a miss there reads the persistent store; a miss there resolves.
 */
export function cacheOutcomes(tier: LookupTier): Array<[CacheTier, 'hit' | 'miss']> {
  switch (tier) {
    case 'memory':
    case 'negative':
      return [['memory', 'hit']];
    case 'store':
      return [
        ['memory', 'miss'],
        ['store', 'hit'],
      ];
    case 'resolve':
      return [
        ['memory', 'miss'],
        ['store', 'miss'],
      ];
    case 'overload':
      // resolver.max_pending reached: both tiers were read and missed; no resolution was started.
      return [
        ['memory', 'miss'],
        ['store', 'miss'],
      ];
  }
}

/**
 * An Exim reply's class, in the socketmap's terms: an enforced policy (`mode=enforce`, whether or not the
 * asked MX is allowed) is `secure`; no policy, testing or none is `notfound`; an `error=` reply (the
 * request was not understood) is `perm`.
 */
export function eximAnswerClass(reply: string): AnswerClass {
  if (reply.startsWith('error=')) return 'perm';
  if (/(?:^| )mode=enforce(?: |$)/.test(reply)) return 'secure';
  if (reply.includes('mode=')) return 'notfound';
  return 'temp';
}

const TEMP_INDEX = ANSWER_CLASSES.indexOf('temp');
const answerIndex = (reply: string): number => ANSWER_CLASSES.indexOf(answerClass(reply));

type Labels = Record<string, string | number>;
type Sample = { labels: Labels; value: number; metricName?: string };
/** What prom-client's Registry reads from a metric at scrape (Registry.registerMetric calls get()). */
interface Exported {
  readonly name: string;
  get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }>;
}

/**
 * A counter or gauge kept in plain numbers and exported through the registry in prom-client's format:
 * inc() is a Map lookup and an addition, and the daemon need not load prom-client until /metrics is
 * first scraped (prom-client alone is about 11 MiB of RSS: BENCHMARKS.md, "Footprint").
 */
class PlainSeries<L extends string> implements Exported {
  readonly aggregator = 'sum';
  private readonly all = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly labelNames: readonly L[],
    /** Called at scrape before the values are read (gauges that ask live objects). */
    private readonly collect?: (self: PlainSeries<L>) => void,
  ) {}

  inc(labels: Partial<Record<L, string>> = {}, by = 1): void {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    const s = this.all.get(key);
    if (s !== undefined) s.value += by;
    else this.all.set(key, { labels: this.labelsOf(labels), value: by });
  }

  set(labels: Partial<Record<L, string>>, value: number): void {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    const s = this.all.get(key);
    if (s !== undefined) s.value = value;
    else this.all.set(key, { labels: this.labelsOf(labels), value });
  }

  reset(): void {
    this.all.clear();
  }

  async get() {
    this.collect?.(this);
    const values = [...this.all.values()].map((s) => ({ labels: s.labels, value: s.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  private labelsOf(labels: Partial<Record<L, string>>): Labels {
    const out: Labels = {};
    for (const n of this.labelNames) if (labels[n] !== undefined) out[n] = labels[n]!;
    return out;
  }
}

/** Adds the pending per-tier counts (0 memory, 1 store) to a tier counter and clears them. */
function moveTierCounts(counter: PlainSeries<'tier'>, pending: Float64Array): void {
  for (let i = 0; i < CACHE_TIERS.length; i++) {
    if (pending[i]! > 0) counter.inc({ tier: CACHE_TIERS[i]! }, pending[i]!);
    pending[i] = 0;
  }
}

/** One series of an AccumulatedHistogram: observe() is a bucket search and three additions. */
class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A histogram with one label whose observations are plain-number updates, exported through the
 * registry in prom-client's format (a custom collector: Registry.registerMetric calls get() at scrape).
 */
class AccumulatedHistogram implements Exported {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly all = new Map<string, HistogramSeries>();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly bounds: readonly number[],
  ) {}

  series(value: string): HistogramSeries {
    let s = this.all.get(value);
    if (s === undefined) this.all.set(value, (s = new HistogramSeries(this.bounds)));
    return s;
  }

  async get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const [labelValue, s] of this.all) {
      let acc = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        acc += s.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
        values.push({ labels: { le, [this.label]: labelValue }, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { [this.label]: labelValue }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { [this.label]: labelValue }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.all.clear();
  }
}

/**
 * The daemon's metrics. Everything is counted in plain numbers (the answer path pays a few additions);
 * prom-client, its registry and its process metrics are loaded when /metrics is first scraped, so a
 * daemon whose `http.listen` is empty never loads them (BENCHMARKS.md, "Footprint"). The process
 * metrics' GC and event-loop-lag series start at that first scrape.
 */
export class Metrics {
  private registry: Registry | undefined;
  private building: Promise<Registry> | undefined;
  /** Every exported metric, in exposition order. */
  private readonly exported: Exported[] = [];
  /** Pass to the resolver (startDaemon does). */
  readonly observer: ResolverObserver;
  /** Pass to the DANE resolver (buildCore's daneObserver): counts DANE lookup outcomes. */
  readonly daneObserver: DaneObserver;
  /** Wraps the store (src/cache/observed-store.ts): store latency and errors. */
  readonly storeObserver: StoreObserver;
  private sources: MetricSources = {};
  /** Answers counted since the last scrape: protocol -> zone -> count per ANSWER_CLASSES index. */
  private readonly pendingQueries = new Map<string, Map<string, Float64Array>>();
  /** Cache hits and misses since the last scrape, by tier (0 memory, 1 store). */
  private readonly pendingHits = new Float64Array(2);
  private readonly pendingMisses = new Float64Array(2);
  private readonly queries: PlainSeries<'protocol' | 'answer' | 'zone'>;
  private readonly answerSeconds: AccumulatedHistogram;
  private readonly cacheHits: PlainSeries<'tier'>;
  private readonly cacheMisses: PlainSeries<'tier'>;
  private readonly fetches: PlainSeries<'outcome'>;
  private readonly refreshes: PlainSeries<'outcome'>;
  private readonly policyEvents: PlainSeries<'event'>;
  private readonly reloads: PlainSeries<'result'>;
  private readonly skippedKeys: PlainSeries<'protocol' | 'reason'>;
  private readonly overloads: PlainSeries<never>;
  private readonly deviations: PlainSeries<'rule'>;
  private readonly processMetrics: boolean;

  constructor(options: MetricsOptions = {}) {
    this.processMetrics = options.processMetrics ?? true;
    const p = METRIC_PREFIX;
    const pendingQueries = this.pendingQueries;
    const add = <M extends Exported>(m: M): M => {
      this.exported.push(m);
      return m;
    };
    this.queries = add(
      new PlainSeries(
        `${p}queries_total`,
        'Lookups answered, by protocol, answer class (secure, notfound, perm, temp) and configured zone',
        'counter',
        ['protocol', 'answer', 'zone'],
        (self) => {
          for (const [protocol, byZone] of pendingQueries) {
            for (const [zone, counts] of byZone) {
              for (let i = 0; i < ANSWER_CLASSES.length; i++) {
                if (counts[i]! > 0) self.inc({ protocol, answer: ANSWER_CLASSES[i]!, zone }, counts[i]!);
                counts[i] = 0;
              }
            }
          }
        },
      ),
    );
    this.answerSeconds = add(new AccumulatedHistogram(`${p}answer_duration_seconds`, 'Time from a parsed request to its reply', 'protocol', ANSWER_SECONDS_BUCKETS));
    // Counted per lookup in plain numbers (pendingHits/pendingMisses, index 0 memory, 1 store) and moved
    // into the series when scraped.
    const pendingHits = this.pendingHits;
    const pendingMisses = this.pendingMisses;
    this.cacheHits = add(
      new PlainSeries(`${p}cache_hits_total`, 'Lookups answered by a cache tier (memory includes remembered absences)', 'counter', ['tier'], (self) =>
        moveTierCounts(self, pendingHits),
      ),
    );
    this.cacheMisses = add(
      new PlainSeries(`${p}cache_misses_total`, 'Lookups a cache tier could not answer', 'counter', ['tier'], (self) => moveTierCounts(self, pendingMisses)),
    );
    this.fetches = add(new PlainSeries(`${p}fetches_total`, 'Policy discoveries and fetches, by outcome: ok or the failure class (see docs/errors.md)', 'counter', ['outcome']));
    this.refreshes = add(new PlainSeries(`${p}refreshes_total`, 'Re-checks of cached policies, by outcome', 'counter', ['outcome']));
    this.policyEvents = add(
      new PlainSeries(`${p}policy_updates_total`, 'Policies stored (learned, changed or refetched) by mode, or dropped at expiry (mode="expired")', 'counter', ['event']),
    );
    this.reloads = add(new PlainSeries(`${p}config_reloads_total`, 'SIGHUP config reloads, by result', 'counter', ['result']));
    this.skippedKeys = add(
      new PlainSeries(
        `${p}skipped_keys_total`,
        'Keys answered NOTFOUND (Exim: mode=none) without a lookup: nothing MTA-STS can apply to (src/sts/domain.ts KEY_SKIP_REASONS)',
        'counter',
        ['protocol', 'reason'],
      ),
    );
    this.overloads = add(
      new PlainSeries<never>(`${p}resolver_overloads_total`, 'Lookups answered from cache or NOTFOUND at once because resolver.max_pending resolutions were under way', 'counter', []),
    );
    this.overloads.inc({}, 0);
    this.deviations = add(
      new PlainSeries(
        `${p}policy_deviations_total`,
        'Newly learned or changed policies accepted only by forgiving a deviation from RFC 8461 §3.2, by rule (docs/decisions.md)',
        'counter',
        ['rule'],
      ),
    );
    for (const rule of DEVIATION_RULES) this.deviations.inc({ rule }, 0);
    add(
      new PlainSeries(`${p}policies`, 'Cached policies in the memory tier, by mode', 'gauge', ['mode'], (self) => {
        const counts = this.sources.policyCounts?.();
        for (const mode of MODES) self.set({ mode }, counts?.[mode] ?? 0);
      }),
    );
    const daneLookups = add(
      new PlainSeries(
        `${p}dane_lookups_total`,
        'DANE resolutions (RFC 7672; cache hits not counted), by state (dane-only, dane, none, null-mx, temp) and why (src/resolver/dane.ts)',
        'counter',
        ['state', 'why'],
      ),
    );
    for (const [state, why] of DANE_OUTCOMES) daneLookups.inc({ state, why }, 0);
    this.daneObserver = (result) => daneLookups.inc({ state: result.state, why: result.why });
    // Store calls (issue 11): how often, how long in all, how many failed, per store kind and operation;
    // rate(seconds_total) / rate(operations_total) is the mean latency.
    const storeOps = add(new PlainSeries(`${p}store_operations_total`, 'Calls to the persistent store, by store kind, operation and result (ok, error)', 'counter', ['store', 'op', 'result']));
    const storeSeconds = add(new PlainSeries(`${p}store_operation_seconds_total`, 'Time spent in calls to the persistent store, by store kind and operation', 'counter', ['store', 'op']));
    this.storeObserver = {
      storeOperation: (store, op, ms, ok) => {
        storeOps.inc({ store, op, result: ok ? 'ok' : 'error' });
        storeSeconds.inc({ store, op }, ms / 1000);
      },
    };
    add(
      new PlainSeries(`${p}dnssec_validating`, 'Whether the resolver validates DNSSEC (1: DANE is looked up for zones with dane: auto)', 'gauge', [], (self) => {
        self.set({}, this.sources.dnssecValidating?.() ? 1 : 0);
      }),
    );
    add(
      new PlainSeries(`${p}open_connections`, 'Client connections open now, by protocol', 'gauge', ['protocol'], (self) => {
        self.reset();
        for (const [protocol, n] of Object.entries(this.sources.connections?.() ?? {})) self.set({ protocol }, n);
      }),
    );

    // Series that exist from the start, so rate() and absent() work before the first event.
    for (const outcome of FETCH_OUTCOMES) this.fetches.inc({ outcome }, 0);
    for (const outcome of REFRESH_OUTCOMES) this.refreshes.inc({ outcome }, 0);
    for (const tier of CACHE_TIERS) {
      this.cacheHits.inc({ tier }, 0);
      this.cacheMisses.inc({ tier }, 0);
    }
    for (const result of ['ok', 'failed']) this.reloads.inc({ result }, 0);
    // Fleet leases (a shared store, issue 11): the series exist from the start, at 0 on a lone daemon.
    const leaseWaits = add(
      new PlainSeries(`${p}lease_waits_total`, "Policy fetches this daemon left to another daemon of the fleet (whose lease it waited on)", 'counter', []),
    );
    const leaseTimeouts = add(
      new PlainSeries(`${p}lease_timeouts_total`, "Such waits that ended without the other daemon's result: this daemon fetched itself", 'counter', []),
    );
    const fleetHits = add(
      new PlainSeries(`${p}fleet_hits_total`, 'Policies taken from the shared store that another daemon fetched or re-checked, instead of our own fetch', 'counter', []),
    );
    for (const series of [leaseWaits, leaseTimeouts, fleetHits]) series.inc({}, 0);

    this.observer = {
      // The same counts as cacheOutcomes(tier), without an allocation per lookup.
      lookup: (_result: LookupResult, tier: LookupTier) => {
        if (tier === 'memory' || tier === 'negative') {
          pendingHits[0]!++;
        } else {
          pendingMisses[0]!++;
          if (tier === 'store') pendingHits[1]!++;
          else pendingMisses[1]!++;
        }
      },
      fetch: (outcome) => this.fetches.inc({ outcome }),
      refresh: (outcome) => this.refreshes.inc({ outcome }),
      policy: (_domain, mode) => this.policyEvents.inc({ event: mode ?? 'expired' }),
      overload: () => this.overloads.inc(),
      deviation: (rule) => this.deviations.inc({ rule }),
      leaseWait: () => leaseWaits.inc(),
      leaseTimeout: () => leaseTimeouts.inc(),
      fleetHit: () => fleetHits.inc(),
    };
  }

  /** Counts the keys a protocol answers without a lookup because no policy can apply to them, by reason. */
  skippedKeyCounter(protocol: string): (reason: KeySkipReason) => void {
    for (const reason of KEY_SKIP_REASONS) this.skippedKeys.inc({ protocol, reason }, 0);
    return (reason) => this.skippedKeys.inc({ protocol, reason });
  }

  /** Replace the scrape-time sources (at start and after a reload swaps the resolver). */
  setSources(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** Create the query series of every answer class for these zones, at 0. */
  declareZones(protocol: string, zones: Iterable<string>): void {
    for (const zone of zones) for (const answer of ANSWER_CLASSES) this.queries.inc({ protocol, answer, zone }, 0);
  }

  /**
   * Wraps a reply handler: times it and counts its reply by class and by the zone `zoneOf(name)` names
   * (the configured zone the map name selects, so unknown names count as `default`). A rejection counts
   * as temp, which is what the protocol layer answers for it, and is passed on unchanged. A reply the
   * handler returns at once is returned at once. The per-answer cost is a few plain-number updates; the
   * counters and the histogram are brought up to date when scraped.
   */
  countReplies(protocol: string, handler: SocketmapHandler, zoneOf: (name: string) => string): SocketmapHandler {
    const count = this.answerCounter(protocol);
    return (name, key) => {
      const started = performance.now();
      let reply: string | Promise<string>;
      try {
        reply = handler(name, key);
      } catch (err) {
        count(zoneOf(name), TEMP_INDEX, started);
        return Promise.reject(err);
      }
      if (typeof reply === 'string') {
        count(zoneOf(name), answerIndex(reply), started);
        return reply;
      }
      return reply.then(
        (r) => {
          count(zoneOf(name), answerIndex(r), started);
          return r;
        },
        (err: unknown) => {
          count(zoneOf(name), TEMP_INDEX, started);
          throw err;
        },
      );
    };
  }

  /** The same for the Exim line protocol: its replies are counted under `protocol="exim"`. */
  countEximReplies(handler: EximHandler): EximHandler {
    const count = this.answerCounter('exim');
    this.declareZones('exim', [EXIM_ZONE]);
    return async (request, log) => {
      const started = performance.now();
      try {
        const reply = await handler(request, log);
        count(EXIM_ZONE, ANSWER_CLASSES.indexOf(eximAnswerClass(reply)), started);
        return reply;
      } catch (err) {
        count(EXIM_ZONE, TEMP_INDEX, started);
        throw err;
      }
    };
  }

  /** Times an answer and counts it by class and zone in plain numbers (brought to prom-client at scrape). */
  private answerCounter(protocol: string): (zone: string, answer: number, started: number) => void {
    let byZone = this.pendingQueries.get(protocol);
    if (byZone === undefined) this.pendingQueries.set(protocol, (byZone = new Map()));
    const zones = byZone;
    const latency = this.answerSeconds.series(protocol);
    return (zone, answer, started) => {
      latency.observe((performance.now() - started) / 1000);
      let counts = zones.get(zone);
      if (counts === undefined) zones.set(zone, (counts = new Float64Array(ANSWER_CLASSES.length)));
      counts[answer]!++;
    };
  }

  countReload(result: 'ok' | 'failed'): void {
    this.reloads.inc({ result });
  }

  /** The text exposition format, as served on /metrics. The first call loads prom-client. */
  async render(): Promise<string> {
    this.registry ??= await (this.building ??= this.build());
    return this.registry.metrics();
  }

  /** The exposition's content type (prom-client's text format 0.0.4). */
  get contentType(): string {
    return this.registry?.contentType ?? PROMETHEUS_TEXT_CONTENT_TYPE;
  }

  private async build(): Promise<Registry> {
    const { Registry, collectDefaultMetrics } = await import('prom-client');
    const registry = new Registry();
    for (const m of this.exported) registry.registerMetric(m as unknown as Metric);
    if (this.processMetrics) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
    return registry;
  }
}

/** One observer that calls each given observer in turn (metrics and a caller's own). */
export function combineObservers(...observers: Array<ResolverObserver | undefined>): ResolverObserver {
  const list = observers.filter((o): o is ResolverObserver => o !== undefined);
  return {
    lookup: (result, tier) => list.forEach((o) => o.lookup?.(result, tier)),
    fetch: (outcome, domain) => list.forEach((o) => o.fetch?.(outcome, domain)),
    refresh: (outcome, domain) => list.forEach((o) => o.refresh?.(outcome, domain)),
    policy: (domain, mode) => list.forEach((o) => o.policy?.(domain, mode)),
    overload: (domain) => list.forEach((o) => o.overload?.(domain)),
    deviation: (rule, domain) => list.forEach((o) => o.deviation?.(rule, domain)),
    leaseWait: (domain) => list.forEach((o) => o.leaseWait?.(domain)),
    leaseTimeout: (domain) => list.forEach((o) => o.leaseTimeout?.(domain)),
    fleetHit: (domain) => list.forEach((o) => o.fleetHit?.(domain)),
  };
}
