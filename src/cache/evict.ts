/**
 * The one eviction rule of the byte-bounded stores (memory, sqlite): when over the bound, the entries
 * closest to expiry go first, down to a low-water mark below the bound so that the next few writes do
 * not each pay for another round. An entry near its expiry has the least left to give: it would be
 * refetched soonest anyway (RFC 8461 §5.1 lets no policy outlive max_age).
 */

/** After an eviction the store holds at most this fraction of its byte bound. */
export const EVICT_LOW_WATER = 0.9;

/** The byte total to evict down to, for a bound of `maxBytes`. */
export function lowWater(maxBytes: number): number {
  return Math.floor(maxBytes * EVICT_LOW_WATER);
}
