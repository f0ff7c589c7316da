/** Helpers shared by the stores that implement the fleet lease (PolicyStore.tryLease). */

/** A lease TTL in whole milliseconds, at least 1 (Redis refuses PX 0). */
export function leaseTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`lease ttl must be a positive number of ms (got ${ttlMs})`);
  return Math.max(1, Math.ceil(ttlMs));
}
