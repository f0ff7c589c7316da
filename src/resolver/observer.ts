/**
 * What the resolver reports as it works, for metrics and logs above it. Plain callbacks (no emitter) so
 * that the answer path pays one optional call; every method is optional.
 */
import type { ReasonClass } from '../errors.js';
import type { DeviationRule, Mode } from '../sts/types.js';
import type { LookupResult } from './types.js';

/** `overload`: both tiers missed and resolver.max_pending resolutions were under way, so none was started. */
export type LookupTier = 'memory' | 'negative' | 'store' | 'resolve' | 'overload';
export type FetchOutcome = 'ok' | ReasonClass;
export type RefreshOutcome = 'unchanged' | 'changed' | 'failed' | 'no-record';

export interface ResolverObserver {
  /** Every answered lookup, with the tier that answered it. */
  lookup?(result: LookupResult, tier: LookupTier): void;
  /** Every policy fetch attempt (and DNS discovery failures, as 'dns'), with its outcome. */
  fetch?(outcome: FetchOutcome, domain: string): void;
  /** Every background or proactive re-check of a cached policy. */
  refresh?(outcome: RefreshOutcome, domain: string): void;
  /** A policy was learned, replaced, or dropped (mode undefined when dropped). */
  policy?(domain: string, mode: Mode | undefined): void;
  /**
   * A lookup was answered without resolving because resolver.max_pending resolutions were under way
   * (also reported to lookup() with tier `overload`).
   */
  overload?(domain: string): void;
  /**
   * A newly learned or changed policy body was accepted only by forgiving `rule` (docs/decisions.md,
   * "What the policy parser forgives"): once per rule per domain and policy id, however many lines.
   */
  deviation?(rule: DeviationRule, domain: string): void;
  /**
   * Fleet leases (a shared store): another daemon held the lease for this domain's fetch, so this one
   * waited for its result in the store.
   */
  leaseWait?(domain: string): void;
  /** Such a wait ended without a result (the holder died, or is slow): this daemon fetched itself. */
  leaseTimeout?(domain: string): void;
  /** A policy taken from the shared store that another daemon fetched or re-checked, instead of our own work. */
  fleetHit?(domain: string): void;
}
