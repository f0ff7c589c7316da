/** The JSON form of a CacheEntry that the shared stores (redis, postgres) write and read back. */
import type { CacheEntry } from './store.js';

/** The JSON we wrote, or undefined when it does not look like a CacheEntry (another writer, another version). */
export function decodeEntry(json: string): CacheEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const e = value as Record<string, unknown>;
  const ok =
    typeof e.domain === 'string' &&
    typeof e.id === 'string' &&
    typeof e.text === 'string' &&
    typeof e.policy === 'object' &&
    e.policy !== null &&
    typeof e.fetchedAt === 'number' &&
    typeof e.expiresAt === 'number' &&
    typeof e.checkedAt === 'number' &&
    typeof e.failures === 'number' &&
    (e.lastError === null || typeof e.lastError === 'object');
  return ok ? (value as CacheEntry) : undefined;
}
