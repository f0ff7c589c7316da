/**
 * A PolicyStore in a Map: nothing survives a restart. For tests, one-shot commands and `cache.store: memory`.
 * Entries are copied in and out, so a caller mutating what it got (or gave) never changes the store,
 * which is how the persistent stores behave too.
 */
import type { CacheEntry, PolicyStore } from './store.js';

export class MemoryStore implements PolicyStore {
  readonly kind = 'memory';
  readonly #entries = new Map<string, CacheEntry>();
  #closed = false;

  async get(domain: string): Promise<CacheEntry | undefined> {
    this.#assertOpen();
    const entry = this.#entries.get(domain);
    return entry === undefined ? undefined : structuredClone(entry);
  }

  async put(entry: CacheEntry): Promise<void> {
    this.#assertOpen();
    this.#entries.set(entry.domain, structuredClone(entry));
  }

  async delete(domain: string): Promise<boolean> {
    this.#assertOpen();
    return this.#entries.delete(domain);
  }

  async *list(): AsyncIterable<CacheEntry> {
    this.#assertOpen();
    // A snapshot: puts and deletes during iteration do not disturb it.
    for (const entry of [...this.#entries.values()]) yield structuredClone(entry);
  }

  async count(): Promise<number> {
    this.#assertOpen();
    return this.#entries.size;
  }

  async flush(): Promise<void> {
    this.#assertOpen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#entries.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('memory store: used after close()');
  }
}
