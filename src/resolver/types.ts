import type { CacheEntry } from '../cache/store.js';
import type { StsError } from '../errors.js';

/** Why there is no policy to apply. */
export type NoPolicyWhy =
  /** The key is not something MTA-STS applies to (parent-domain probe, address literal, [host] next hop). */
  | 'not-applicable'
  /** NXDOMAIN/NODATA at _mta-sts, or no v=STSv1 record among the TXT records. */
  | 'no-record'
  /** TXT records exist but are unusable (several STSv1 records, bad syntax): RFC 8461 §3.1 "no policy". */
  | 'invalid-record'
  /** Discovery or fetch failed and nothing usable was cached. */
  | 'failed'
  /**
   * A fetch was due but the policy host was fetched less than resolver.min_fetch_interval_ms ago, and
   * nothing unexpired is cached (e.g. its policy had max_age 0).
   */
  | 'paced'
  /** The answer deadline passed before resolution finished; it goes on in the background. */
  | 'deadline'
  /**
   * resolver.max_pending resolutions were already under way (e.g. tarpitting policy hosts) and nothing
   * unexpired was cached: answered at once without starting another.
   */
  | 'overload';

export type LookupResult =
  | { kind: 'policy'; domain: string; entry: CacheEntry; source: 'memory' | 'store' | 'fetch' }
  | { kind: 'none'; domain: string; why: NoPolicyWhy; error?: StsError };

/** What the servers need from the resolver. */
export interface PolicyLookup {
  /** `domain` must already be normalised (src/sts/domain.ts). Never rejects. */
  lookup(domain: string): Promise<LookupResult>;
}
