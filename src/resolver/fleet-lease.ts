/**
 * One fetch per domain for a whole fleet (issue 11): daemons sharing a store (redis, postgres) take a
 * short lease in it before work every daemon would otherwise do at once, such as the first fetch of a
 * newly asked domain's policy. The holder does the work and writes the result to the store; the others
 * wait for that result in the store, bounded, then do the work themselves. A crashed holder's lease
 * lapses by its TTL; a lease that cannot be taken because the store is away means "do it yourself", never
 * an error answer. The choices are in docs/decisions.md, "Fleet leases".
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { CacheEntry, PolicyStore } from '../cache/store.js';

/** The store methods a lease needs; present on shared stores only (src/cache/store.ts). */
type LeaseStore = Required<Pick<PolicyStore, 'tryLease' | 'releaseLease' | 'get'>>;

export interface FleetLeaseOptions {
  /** How long a lease lasts unless given back: a little over one fetch's deadline (fetch.timeout_ms). */
  ttlMs: number;
  /** How long a daemon that did not get the lease waits for the holder's result before doing the work. */
  waitMs: number;
}

/**
 * First pause between looks at the store while another daemon holds the lease: about one policy fetch
 * on a good day, so most waits end at the first or second look.
 */
export const LEASE_POLL_FIRST_MS = 50;
/**
 * The pause doubles up to this, so a wait of seconds costs a dozen store reads, not hundreds: with 1,000
 * new domains on five daemons, 4,000 waits run at once (bench/fleet.ts), and each look costs CPU on both
 * ends.
 */
export const LEASE_POLL_MAX_MS = 500;
/** The lease itself (did the holder give up, did its lease lapse?) is asked at every this many looks. */
export const LEASE_RETRY_EVERY = 2;
/** A hard bound on looks per wait, whatever waitMs says. */
export const LEASE_POLL_MAX_ROUNDS = 200;

export type LeaseOutcome =
  /** This daemon holds the lease: do the work, then release() (after the result is in the store). */
  | { kind: 'held'; release: () => Promise<void> }
  /** Another daemon's result is in the store: use it, do no work. */
  | { kind: 'result'; entry: CacheEntry }
  /** Another daemon held the lease for the whole wait and no result came: do the work without it. */
  | { kind: 'timeout' }
  /** The store could not be asked: do the work without it. */
  | { kind: 'unavailable' };

export interface LeaseEvents {
  /** The lease was held elsewhere, so this daemon started waiting. */
  wait?(key: string): void;
  /** The wait ended without a result; this daemon does the work itself. */
  timeout?(key: string): void;
  /** The store could not be asked (twice): this daemon does the work itself. */
  unavailable?(key: string): void;
}

/** A per-process owner id: host and pid for people reading the store, random for uniqueness. */
export function leaseOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

export function storeHasLeases(store: PolicyStore | null): store is PolicyStore & LeaseStore {
  return typeof store?.tryLease === 'function' && typeof store.releaseLease === 'function';
}

export class FleetLease {
  constructor(
    private readonly store: LeaseStore,
    readonly owner: string,
    private readonly options: FleetLeaseOptions,
    private readonly events: LeaseEvents = {},
  ) {}

  /** How long a lease lasts unless given back. */
  get ttlMs(): number {
    return this.options.ttlMs;
  }

  /**
   * Take the lease `key`, or wait for another holder's result. `result()` reads the store and says
   * whether what is there already answers (e.g. the policy with the wanted id, fetched after ours). It
   * is asked again right after the lease is taken: a holder that finished and let go just before we
   * asked has left its result, and doing the work again would be the duplicate the lease is for.
   */
  async claim(key: string, result: () => Promise<CacheEntry | undefined>): Promise<LeaseOutcome> {
    const first = await this.take(key, result);
    if (first !== undefined) return first;
    this.events.wait?.(key);
    const until = Date.now() + this.options.waitMs;
    let pause = LEASE_POLL_FIRST_MS;
    for (let round = 0; round < LEASE_POLL_MAX_ROUNDS; round++) {
      const left = until - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(pause, left));
      pause = Math.min(pause * 2, LEASE_POLL_MAX_MS);
      const found = await result().catch(() => undefined);
      if (found !== undefined) return { kind: 'result', entry: found };
      if (round % LEASE_RETRY_EVERY !== LEASE_RETRY_EVERY - 1) continue;
      // The holder may have given up (a failed fetch releases early) or its lease lapsed: take over.
      const again = await this.take(key, result);
      if (again !== undefined) return again;
    }
    this.events.timeout?.(key);
    return { kind: 'timeout' };
  }

  /**
   * Take the lease `key` without waiting: `busy` when another daemon holds it (proactive refreshes are
   * put off rather than wait: the holder's result is in the store by the next look).
   */
  async tryOnce(key: string, result: () => Promise<CacheEntry | undefined>): Promise<LeaseOutcome | { kind: 'busy' }> {
    return (await this.take(key, result)) ?? { kind: 'busy' };
  }

  /** Undefined when another daemon holds the lease. */
  private async take(key: string, result: () => Promise<CacheEntry | undefined>): Promise<LeaseOutcome | undefined> {
    let held: boolean;
    try {
      held = await this.store.tryLease(key, this.owner, this.options.ttlMs);
    } catch {
      // Once more: a busy store times a command out now and then, and the lease may even have been
      // taken by the first try (taking one's own lease again renews it, so the retry says true).
      try {
        held = await this.store.tryLease(key, this.owner, this.options.ttlMs);
      } catch {
        this.events.unavailable?.(key);
        return { kind: 'unavailable' };
      }
    }
    if (!held) return undefined;
    const release = () => this.store.releaseLease(key, this.owner);
    const found = await result().catch(() => undefined);
    if (found === undefined) return { kind: 'held', release };
    await release();
    return { kind: 'result', entry: found };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
