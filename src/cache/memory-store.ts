/**
 * A PolicyStore in a Map: nothing survives a restart. For tests, one-shot commands and `cache.store: memory`.
 * Entries are copied in and out, so a caller mutating what it got (or gave) never changes the store,
 * which is how the persistent stores behave too.
 *
 * Bounded in bytes (`cache.store_max_bytes`, estimated by entryBytes()): a put that takes the total over
 * the bound evicts the entries closest to expiry, down to the low-water mark (src/cache/evict.ts). Expired
 * entries leave at prune().
 */
import { DEFAULTS } from '../config/defaults.js';
import { entryBytes } from './entry-size.js';
import { lowWater } from './evict.js';
import { PRUNE_LIMIT, type CacheEntry, type PolicyStore } from './store.js';

export interface MemoryStoreOptions {
  /** Default DEFAULTS.cache.store_max_bytes. */
  maxBytes?: number;
}

export class MemoryStore implements PolicyStore {
  readonly kind = 'memory';
  readonly maxBytes: number;
  readonly #entries = new Map<string, { entry: CacheEntry; bytes: number }>();
  #bytes = 0;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULTS.cache.store_max_bytes;
  }

  /** Estimated bytes held (never above maxBytes after a put returns). */
  get bytes(): number {
    return this.#bytes;
  }

  async get(domain: string): Promise<CacheEntry | undefined> {
    this.#assertOpen();
    const held = this.#entries.get(domain);
    return held === undefined ? undefined : structuredClone(held.entry);
  }

  async put(entry: CacheEntry): Promise<void> {
    this.#assertOpen();
    this.#remove(entry.domain);
    const bytes = entryBytes(entry);
    this.#entries.set(entry.domain, { entry: structuredClone(entry), bytes });
    this.#bytes += bytes;
    if (this.#bytes > this.maxBytes) this.#evict();
  }

  async delete(domain: string): Promise<boolean> {
    this.#assertOpen();
    return this.#remove(domain);
  }

  async *list(): AsyncIterable<CacheEntry> {
    this.#assertOpen();
    // A snapshot: puts and deletes during iteration do not disturb it.
    for (const held of [...this.#entries.values()]) yield structuredClone(held.entry);
  }

  async count(): Promise<number> {
    this.#assertOpen();
    return this.#entries.size;
  }

  async prune(now: number, limit = PRUNE_LIMIT): Promise<number> {
    this.#assertOpen();
    let removed = 0;
    for (const [domain, held] of this.#entries) {
      if (removed >= limit) break;
      if (held.entry.expiresAt <= now && this.#remove(domain)) removed++;
    }
    return removed;
  }

  async flush(): Promise<void> {
    this.#assertOpen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#entries.clear();
    this.#bytes = 0;
  }

  #remove(domain: string): boolean {
    const held = this.#entries.get(domain);
    if (held === undefined) return false;
    this.#entries.delete(domain);
    this.#bytes -= held.bytes;
    return true;
  }

  /** Closest to expiry first, down to the low-water mark; one sort per eviction round. */
  #evict(): void {
    const target = lowWater(this.maxBytes);
    const byExpiry = [...this.#entries.values()].sort((a, b) => a.entry.expiresAt - b.entry.expiresAt);
    for (const held of byExpiry) {
      if (this.#bytes <= target) break;
      this.#remove(held.entry.domain);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('memory store: used after close()');
  }
}
