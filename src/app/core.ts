/**
 * The policy side of the daemon as one unit: store, resolver (with its DNS client and fetcher), the
 * proactive refresher and the pruner. A reload that changes resolver, dns, fetch or cache settings builds a new unit
 * and retires the old one (src/app/reload.ts); the listeners never see the swap.
 */
import type { Logger } from 'pino';
import { observeStore, type StoreObserver } from '../cache/observed-store.js';
import { openStore, storeConfigOf } from '../cache/open-store.js';
import type { PolicyStore } from '../cache/store.js';
import { checkCachePathWritable } from '../config/cache-path.js';
import type { Config } from '../config/schema.js';
import type { PolicyFetcher } from '../net/policy-fetch.js';
import { createSecureDnsClient, detectValidation, isLocalServer, type ConfiguredSecureDnsClient, type ValidationStatus } from '../net/secure-dns.js';
import { DaneResolver, type DaneObserver } from '../resolver/dane.js';
import { assembleResolver } from '../resolver/assemble.js';
import type { ResolverObserver } from '../resolver/observer.js';
import { Pruner } from '../resolver/pruner.js';
import { Refresher } from '../resolver/refresher.js';
import type { Resolver } from '../resolver/resolver.js';

/** At shutdown, how long resolutions under way may take to finish and reach the store. */
export const SETTLE_ON_STOP_MS = 1_000;
/** How long /readyz waits for the store to answer a read. */
export const STORE_PROBE_TIMEOUT_MS = 1_000;
/** A key no lookup ever uses (not a normalised domain), read to see whether the store answers. */
const PROBE_KEY = 'readyz.probe.invalid.';

export interface Core {
  store: PolicyStore;
  resolver: Resolver;
  fetcher: PolicyFetcher;
  refresher: Refresher;
  /** Drops expired policies from the memory tier and the store every cache.prune_interval_ms. */
  pruner: Pruner;
  /** The DANE branch (issue 16), through the same `dns.servers` with the DO bit. */
  dane: CoreDane;
}

export interface CoreDane {
  resolver: DaneResolver;
  client: ConfiguredSecureDnsClient;
  /** Whether the resolver validates DNSSEC (detectDnssec); undefined until asked: DANE is off until then. */
  validation: ValidationStatus | undefined;
  /** Asks again every DNSSEC_RECHECK_MS while the core runs (startCore, stopCore). */
  recheck?: NodeJS.Timeout;
}

/**
 * How often a running core asks again whether its resolver validates: a resolver that did not answer at
 * start, or that was restarted with other settings, is noticed within this (a state change is logged).
 */
export const DNSSEC_RECHECK_MS = 5 * 60_000;

export interface CoreExtras {
  observer?: ResolverObserver;
  /** Told of every DANE resolution (not of cache hits): for a DANE lookup outcome counter. */
  daneObserver?: DaneObserver;
  now?: () => number;
}

/** Opens the configured store; an unusable cache.path is one ConfigError line naming it, what to do. */
export async function openConfiguredStore(config: Config, logger: Logger, observer?: StoreObserver): Promise<PolicyStore> {
  if (config.cache.store === 'sqlite') checkCachePathWritable(config.cache.path, { create: true });
  const store = await openStore(storeConfigOf(config), logger);
  return observer ? observeStore(store, observer) : store;
}

/** Builds (does not start) a core over `store`. Throws ConfigError when fetch.ca_file is unusable. */
export function buildCore(config: Config, store: PolicyStore, logger: Logger, extras: CoreExtras = {}): Core {
  const { resolver, fetcher } = assembleResolver(config, store, logger, {
    ...(extras.now ? { now: extras.now } : {}),
    ...(extras.observer ? { observer: extras.observer } : {}),
  });
  const r = config.resolver;
  const refresher = new Refresher(resolver, { tickMs: r.refresh_tick_ms, batch: r.refresh_batch, concurrency: r.refresh_concurrency }, logger);
  const pruner = new Pruner(resolver, store, { intervalMs: config.cache.prune_interval_ms }, logger);
  const client = createSecureDnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout_ms, tries: config.dns.tries });
  const daneResolver = new DaneResolver(client, { answerDeadlineMs: config.resolver.answer_deadline_ms }, extras.daneObserver, extras.now);
  return { store, resolver, fetcher, refresher, pruner, dane: { resolver: daneResolver, client, validation: undefined } };
}

/** How long start and reload wait for detectDnssec before going on (it then finishes in the background). */
export const DNSSEC_DETECT_WAIT_MS = 3_000;

/**
 * Asks whether the core's resolver validates DNSSEC (the root SOA answered with AD), remembers it and
 * logs it: `zones.NAME.dane: auto` means DANE first only then. Waits at most `waitMs` (a resolver that
 * does not answer must not hold up the start); the answer, when it comes later, still takes effect.
 * Never rejects; the question itself is bounded by dns.timeout_ms × dns.tries per server.
 */
export async function detectDnssec(core: Core, logger: Logger, waitMs = DNSSEC_DETECT_WAIT_MS): Promise<void> {
  const asked = detectValidation(core.dane.client).then((status) => {
    const before = core.dane.validation;
    core.dane.validation = status;
    // Logged at the first answer and when it changes, not at every recheck.
    if (before !== undefined && before.validates === status.validates) return;
    const servers = core.dane.client.servers.map((s) => `${s.host}:${s.port}`);
    if (status.validates) logger.info({ dnssec: status.detail, servers }, 'the resolver validates DNSSEC: DANE first (RFC 8461 §2) where zones say dane: auto');
    if (status.validates && !core.dane.client.servers.every(isLocalServer)) {
      logger.warn({ servers }, 'the validating resolver is not on this host: its AD bit crosses the network unprotected; prefer one on 127.0.0.1 (RFC 6698 §4.1)');
    }
    else logger.warn({ dnssec: status.detail }, 'the resolver does not validate DNSSEC: DANE is not looked up; point dns.servers at a validating resolver');
  });
  await boundedWait(asked, waitMs);
}

/**
 * Loads the store's policies into the hot tier, then starts the refresher. Answers do not wait for
 * this: a hot-tier miss reads the store directly; warming only lets the refresher see every entry.
 */
export function startCore(core: Core, logger: Logger): void {
  core.dane.recheck = setInterval(() => void detectDnssec(core, logger, 0), DNSSEC_RECHECK_MS);
  core.dane.recheck.unref();
  core.resolver.warmFromStore().then(
    (loaded) => {
      if (loaded > 0) logger.info({ loaded }, 'cached policies loaded');
      core.refresher.start();
      // What expired while the daemon was down goes now, not an interval later.
      void core.pruner.run();
      core.pruner.start();
    },
    (err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'could not read cached policies; starting cold');
      core.refresher.start();
      core.pruner.start();
    },
  );
}

/**
 * Stops refreshing, lets resolutions under way finish (at most `settleMs`, when given: at shutdown, an
 * answer owed to nobody is not worth waiting for), closes the fetcher (which waits for fetches still
 * running, each bounded by fetch.timeout_ms), then flushes and, if asked, closes the store.
 */
export async function stopCore(core: Core, options: { closeStore: boolean; settleMs?: number }): Promise<void> {
  clearInterval(core.dane.recheck);
  await Promise.all([core.refresher.stop(), core.pruner.stop()]);
  if (options.settleMs === undefined) await core.resolver.settle();
  else await boundedWait(core.resolver.settle(), options.settleMs);
  await core.fetcher.close();
  await core.store.flush();
  if (options.closeStore) await core.store.close();
}

async function boundedWait(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Whether the store answers a read within STORE_PROBE_TIMEOUT_MS: `ok`, or why not. */
export async function probeStore(store: PolicyStore, timeoutMs = STORE_PROBE_TIMEOUT_MS): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
  });
  try {
    return await Promise.race([
      store.get(PROBE_KEY).then(
        () => 'ok',
        (err: unknown) => `unreachable: ${(err as Error).message}`,
      ),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
