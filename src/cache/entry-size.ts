/**
 * How many bytes of memory one cached policy costs, for the byte bounds of the hot tier and the memory
 * store (`cache.memory_max_bytes`, `cache.store_max_bytes`). An estimate, meant to be on the high side:
 * the policy text is held twice over (as fetched, and parsed into one object per `mx` line), so counting
 * the text alone would undercount a policy of many short `mx` lines about four times.
 *
 * The constants were measured with V8's heap (node 20, `--expose-gc`, heapUsed after gc around 50,000
 * small entries and 500 entries of 2,000 `mx` lines): about 820 bytes for an entry with a 120-byte text
 * and two `mx` lines, about 96 bytes per `mx` line beyond its name. See docs/decisions.md.
 */
import type { Policy } from '../sts/types.js';
import type { CacheEntry } from './store.js';

/** The entry object, its bookkeeping fields, the parsed policy's skeleton, the cache's own node. */
export const ENTRY_OVERHEAD_BYTES = 768;
/** One parsed `mx` pattern: its object, its string header, its array slot. */
export const MX_OVERHEAD_BYTES = 80;
/** One extension key/value pair: its array, two string headers, its array slot. */
export const EXTENSION_OVERHEAD_BYTES = 80;
/** A remembered absence (negative entry): its object and the cache's node. */
export const NEGATIVE_ENTRY_BYTES = 256;

/**
 * The parsed policy's share, walked at each write: a WeakMap remembering it per policy cost about 40 bytes
 * a policy (issue 12: 1M policies), and a policy of 2,600 `mx` lines is walked in microseconds.
 */
function policyBytes(policy: Policy): number {
  let bytes = 0;
  for (const mx of policy.mx) bytes += MX_OVERHEAD_BYTES + mx.domain.length;
  for (const [key, value] of policy.extensions) bytes += EXTENSION_OVERHEAD_BYTES + key.length + value.length;
  return bytes;
}

/** Estimated heap bytes of one cache entry (policy text, its parsed form, overheads). */
export function entryBytes(entry: CacheEntry): number {
  let bytes = ENTRY_OVERHEAD_BYTES + entry.domain.length + entry.id.length + entry.text.length + policyBytes(entry.policy);
  if (entry.lastError !== null) bytes += entry.lastError.message.length;
  return bytes;
}
