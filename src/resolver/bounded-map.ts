/**
 * A Map with a bound on its size: past `max` entries the one set longest ago goes. For per-domain marks
 * that only need a bound (fetch pacing, failure logging), not recency on read. Unlike lru-cache, which
 * allocates and fills its slot arrays for `max` entries when created (about 28 bytes per slot: 2.8 MB
 * for each 100,000-entry cache, resident from the start), it grows with what it holds (issue 12).
 */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private readonly max: number) {
    if (!(max >= 1)) throw new RangeError('BoundedMap needs max >= 1');
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  /** Sets the value; the key becomes the newest. Drops the oldest entry when full. */
  set(key: K, value: V): this {
    if (this.map.has(key)) this.map.delete(key);
    else if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as K);
    this.map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}
