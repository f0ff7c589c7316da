/**
 * A Map with a bound on its size: past `max` entries the one set longest ago goes. For per-domain marks
 * that only need a bound (fetch pacing, failure logging), not recency on read. It grows with what it holds
 * (issue 12), like ./clock-cache.ts.
 */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  /**
   * The oldest key is the next under this live iterator: only evictions move it, and each takes the key it
   * lands on. A new iterator per eviction would step over every deleted slot at the Map's start first
   * (./clock-cache.ts).
   */
  private oldest: Iterator<K> | undefined;

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
    else if (this.map.size >= this.max) this.map.delete(this.takeOldest());
    this.map.set(key, value);
    return this;
  }

  private takeOldest(): K {
    let step = (this.oldest ??= this.map.keys()).next();
    if (step.done) step = (this.oldest = this.map.keys()).next();
    return step.value as K;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}
