/**
 * A cache bounded in entries and in estimated bytes, that grows with what it holds and evicts by second
 * chance (CLOCK): a read only sets the value's `used` flag; when the cache is over a bound, the hand walks
 * from the oldest entry, moving a used one to the newest end with its flag cleared and evicting the first
 * unused one. Recency is close to LRU's at a fraction of the cost:
 * - no slot arrays allocated for `maxEntries` up front (lru-cache fills five of them at creation: 3.6 MB
 *   resident at idle for the hot tier's default 100,000 entries, issue 12);
 * - no per-entry bookkeeping beyond two fields on the value, and a hit writes one flag instead of
 *   relinking a list (at a million policies, each relink is a cache miss of its own).
 *
 * The hand is one live Map iterator kept across evictions. A new iterator per eviction would start at the
 * Map's first slot and step over every deleted slot before it, O(evictions since the last rehash): about
 * 30 µs an eviction at a million entries instead of 2 µs (measured, node 20).
 */

/** What the cache keeps on each value it holds. */
export interface CacheSlot {
  /** Set by get(); cleared when the hand passes. */
  used: boolean;
  /** The estimate the cache counted at set(), subtracted when the value leaves. */
  bytes: number;
}

export interface ClockCacheOptions<K, V> {
  maxEntries: number;
  /** Bound on the sum of bytesOf over the values held; a value larger than this is not kept. */
  maxBytes: number;
  bytesOf(value: V, key: K): number;
  /** Every way out of the cache (evicted, deleted, replaced, cleared) passes here. */
  dispose?(value: V, key: K): void;
}

/**
 * Second chances one eviction may give before it evicts regardless: when every entry was read since the
 * hand last passed, any of them is a fair victim, and one set() must not walk the whole cache.
 */
const MAX_SECOND_CHANCES = 64;

export class ClockCache<K, V extends CacheSlot> {
  private readonly map = new Map<K, V>();
  private hand: Iterator<[K, V]> | undefined;
  private total = 0;

  constructor(private readonly options: ClockCacheOptions<K, V>) {
    if (!(options.maxEntries >= 1) || !(options.maxBytes >= 1)) throw new RangeError('ClockCache needs maxEntries >= 1 and maxBytes >= 1');
  }

  get size(): number {
    return this.map.size;
  }

  /** Sum of the estimated bytes held (never above maxBytes). */
  get calculatedSize(): number {
    return this.total;
  }

  /** The value, marked as used. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) value.used = true;
    return value;
  }

  /** The value, without marking it. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /**
   * Holds the value as the newest entry, replacing any other under the key, then evicts down to the
   * bounds. A value larger than maxBytes is not kept, and the key's old value goes: false then.
   */
  set(key: K, value: V): boolean {
    const bytes = this.options.bytesOf(value, key);
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.total -= old.bytes;
      if (old !== value) this.options.dispose?.(old, key);
    }
    if (bytes > this.options.maxBytes) return false;
    value.used = false;
    value.bytes = bytes;
    this.map.set(key, value);
    this.total += bytes;
    this.evict(value);
    return true;
  }

  delete(key: K): boolean {
    const value = this.map.get(key);
    if (value === undefined) return false;
    this.remove(key, value);
    return true;
  }

  clear(): void {
    const held = [...this.map];
    this.map.clear();
    this.total = 0;
    this.hand = undefined;
    for (const [key, value] of held) this.options.dispose?.(value, key);
  }

  /** Oldest first. */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }

  private remove(key: K, value: V): void {
    this.map.delete(key);
    this.total -= value.bytes;
    this.options.dispose?.(value, key);
  }

  /** Evicts down to the bounds, never `kept` (the value just set, which fits alone). */
  private evict(kept: V): void {
    let chances = MAX_SECOND_CHANCES;
    // Bounded: a pass removes an entry, spends a second chance, or passes `kept` (once a lap, and every
    // lap removes or spends); the cap is a backstop.
    const cap = this.map.size + 2 * MAX_SECOND_CHANCES + 4;
    for (let pass = 0; pass < cap; pass++) {
      if (this.map.size <= this.options.maxEntries && this.total <= this.options.maxBytes) return;
      const next = this.advance();
      if (next === undefined) return;
      const [key, value] = next;
      if (value === kept) continue;
      if (value.used && chances > 0) {
        chances--;
        value.used = false;
        // To the newest end: the hand meets it again after every other entry.
        this.map.delete(key);
        this.map.set(key, value);
        continue;
      }
      this.remove(key, value);
    }
  }

  /** The entry under the hand, the hand then one further; from the oldest again after the newest. */
  private advance(): [K, V] | undefined {
    for (let lap = 0; lap < 2; lap++) {
      this.hand ??= this.map.entries();
      const step = this.hand.next();
      if (!step.done) return step.value;
      this.hand = undefined;
    }
    return undefined;
  }
}
