/** Build the resolver and its network collaborators from a validated config. */
import type { Logger } from 'pino';
import type { PolicyStore } from '../cache/store.js';
import type { Config } from '../config/schema.js';
import { networkFromConfig } from '../net/from-config.js';
import type { PolicyFetcher } from '../net/policy-fetch.js';
import type { ResolverObserver } from './observer.js';
import { Resolver } from './resolver.js';

/**
 * A fleet lease outlives the fetch it covers by this much (store round trips, the write of the result), so
 * it does not lapse under a holder that is still working.
 */
export const LEASE_MARGIN_MS = 2_000;

export interface Assembled {
  resolver: Resolver;
  fetcher: PolicyFetcher;
}

export interface AssembleExtras {
  observer?: ResolverObserver;
  now?: () => number;
}

export function assembleResolver(config: Config, store: PolicyStore | null, logger: Logger, extras: AssembleExtras = {}): Assembled {
  const { dns, fetcher } = networkFromConfig(config);
  const r = config.resolver;
  const resolver = new Resolver(
    { dns, fetcher, store, logger, ...extras },
    {
      answerDeadlineMs: r.answer_deadline_ms,
      negativeTtlMs: r.negative_ttl_ms,
      failureRetryMs: r.failure_retry_ms,
      recheckIntervalMs: r.recheck_interval_ms,
      dnsFailureTtlMs: r.dns_failure_ttl_ms,
      memoryEntries: r.memory_entries,
      memoryMaxBytes: config.cache.memory_max_bytes,
      maxConcurrentFetches: r.max_concurrent_fetches,
      maxPending: r.max_pending,
      minFetchIntervalMs: r.min_fetch_interval_ms,
      refreshIntervalMs: r.refresh_interval_ms,
      refetchAtFraction: r.refetch_at_fraction,
      failureBackoffMaxMs: r.failure_backoff_max_ms,
      leaseTtlMs: config.fetch.timeout_ms + LEASE_MARGIN_MS,
    },
  );
  return { resolver, fetcher };
}
