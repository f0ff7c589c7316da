/**
 * The persistent tier of the policy cache. Every store (memory, sqlite, redis) implements this and passes
 * the one contract suite in test/cache/store-contract.ts. The resolver keeps an in-memory hot tier in
 * front, so a store is on the answer path only on a hot-tier miss.
 */
import type { ReasonClass } from '../errors.js';
import type { Policy } from '../sts/types.js';

/** One domain's cached policy and its refresh bookkeeping. Times are milliseconds since the epoch. */
export interface CacheEntry {
  /** Normalised domain (lower case, A-labels, no trailing dot). */
  domain: string;
  /** The `_mta-sts` TXT id the policy was fetched under (RFC 8461 §3.1). */
  id: string;
  policy: Policy;
  /** The policy body exactly as fetched. */
  text: string;
  fetchedAt: number;
  /** fetchedAt + max_age (RFC 8461 §3.2): after this the policy is gone. */
  expiresAt: number;
  /** Last time the TXT id was confirmed or the policy refetched successfully. */
  checkedAt: number;
  /** The last refresh failure, cleared on success. */
  lastError: { reason: ReasonClass; message: string; at: number } | null;
  /** Consecutive refresh failures, 0 after a success. */
  failures: number;
}

/** The most entries one prune() call removes unless told otherwise: one run stays short. */
export const PRUNE_LIMIT = 100_000;

export type StoreKind = 'memory' | 'sqlite' | 'redis' | 'postgres';

export interface PolicyStore {
  readonly kind: StoreKind;
  /** The entry for a normalised domain, or undefined. Rejects only when the backend cannot be read. */
  get(domain: string): Promise<CacheEntry | undefined>;
  /** Insert or replace. May be batched: resolves once the write is queued, never blocking an answer. */
  put(entry: CacheEntry): Promise<void>;
  /** Remove; true when something was removed. */
  delete(domain: string): Promise<boolean>;
  /** Every entry, in no particular order (start-up warm load, `cache list`, `cache export`). */
  list(): AsyncIterable<CacheEntry>;
  count(): Promise<number>;
  /**
   * Remove entries past their max_age (expiresAt <= now): RFC 8461 §5.1 never lets such a policy be used
   * again, so keeping it only costs space. Removes at most `limit` entries (default PRUNE_LIMIT) and
   * resolves with the number removed; unexpired entries are never touched.
   */
  prune(now: number, limit?: number): Promise<number>;
  /**
   * Fleet-wide lease on work named `key` (e.g. `resolve:<domain>`, `refresh:<domain>`): true when this
   * caller (`owner`, unique per daemon process) now holds it for `ttlMs`, false when another holder
   * does. Expires by itself (a crashed holder's lease lapses). Rejects when the backend cannot be reached
   * (the caller then does the work itself). Only stores shared by several daemons (redis, postgres) have
   * it; without it the resolver never waits for another daemon.
   */
  tryLease?(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease back early if `owner` still holds it (compare-and-delete). Never rejects. */
  releaseLease?(key: string, owner: string): Promise<void>;
  /** Write out anything queued (e.g. before exit). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** The subset of a pino logger the stores use (a pino Logger fits as is). */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
