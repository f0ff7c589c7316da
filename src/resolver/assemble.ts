/** Build the resolver and its network collaborators from a validated config. */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { PolicyStore } from '../cache/store.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { createDnsClient } from '../net/dns.js';
import { createPolicyFetcher, type PolicyFetcher } from '../net/policy-fetch.js';
import type { ResolverObserver } from './observer.js';
import { Resolver } from './resolver.js';

export interface Assembled {
  resolver: Resolver;
  fetcher: PolicyFetcher;
}

export interface AssembleExtras {
  observer?: ResolverObserver;
  now?: () => number;
}

export function assembleResolver(config: Config, store: PolicyStore | null, logger: Logger, extras: AssembleExtras = {}): Assembled {
  const dns = createDnsClient({
    servers: config.dns.servers,
    timeoutMs: config.dns.timeout_ms,
    tries: config.dns.tries,
  });
  const fetcher = createPolicyFetcher(dns, {
    extraCaPem: readCaFile(config.fetch.ca_file),
    allowPrivateAddresses: config.fetch.allow_private_addresses,
    timeoutMs: config.fetch.timeout_ms,
    maxBytes: config.fetch.max_bytes,
    userAgent: config.fetch.user_agent,
  });
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
    },
  );
  return { resolver, fetcher };
}

/** Reads `fetch.ca_file` (PEM), also for `check`, which trusts the same extra roots for MX certificates. */
export function readCaFile(file: string | null): string | null {
  if (file === null) return null;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('fetch.ca_file', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('fetch.ca_file', `${file} holds no PEM certificate`);
  return pem;
}
