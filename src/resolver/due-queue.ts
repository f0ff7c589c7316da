/**
 * A binary min-heap of items by the time each is due, with removal of any item (issue 12: the refresher
 * takes its due work in time proportional to the due entries and log n, not by scanning the whole cache).
 * An item carries its own heap position (`queueIndex`, -1 when not queued), so removal needs no side
 * table: at a million cached policies a Map from key to position would cost about 80 bytes each.
 */
export interface Queued {
  /** Position in the heap; -1 when not queued. Owned by the queue. */
  queueIndex: number;
}

export class DueQueue<T extends Queued> {
  private readonly heap: T[] = [];

  /** @param dueAt when an item is due (must not change while the item is queued: remove, change, add). */
  constructor(private readonly dueAt: (item: T) => number) {}

  get size(): number {
    return this.heap.length;
  }

  add(item: T): void {
    if (item.queueIndex >= 0) this.remove(item);
    item.queueIndex = this.heap.length;
    this.heap.push(item);
    this.up(item.queueIndex);
  }

  /** Takes an item out; an item not queued is left alone. O(log n). */
  remove(item: T): void {
    const i = item.queueIndex;
    if (i < 0 || this.heap[i] !== item) return;
    item.queueIndex = -1;
    const last = this.heap.pop()!;
    if (i === this.heap.length) return;
    this.heap[i] = last;
    last.queueIndex = i;
    this.down(i);
    this.up(last.queueIndex);
  }

  /**
   * Up to `limit` items due at `now` or before, soonest first, that `accept` takes. They stay queued (an
   * item is due until its owner re-schedules or removes it). O((limit + skipped) log n): the items looked
   * at are taken off and put back.
   */
  due(now: number, limit: number, accept: (item: T) => boolean = () => true): T[] {
    const taken: T[] = [];
    const seen: T[] = [];
    // Bounded: each pass takes one item off, and there are heap.length of them.
    while (taken.length < limit && this.heap.length > 0 && this.dueAt(this.heap[0]!) <= now) {
      const top = this.heap[0]!;
      this.remove(top);
      seen.push(top);
      if (accept(top)) taken.push(top);
    }
    for (const item of seen) this.add(item);
    return taken;
  }

  clear(): void {
    for (const item of this.heap) item.queueIndex = -1;
    this.heap.length = 0;
  }

  private up(i: number): void {
    const heap = this.heap;
    const item = heap[i]!;
    const at = this.dueAt(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (this.dueAt(p) <= at) break;
      heap[i] = p;
      p.queueIndex = i;
      i = parent;
    }
    heap[i] = item;
    item.queueIndex = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[i]!;
    const at = this.dueAt(item);
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.dueAt(heap[r]!) < this.dueAt(heap[l]!) ? r : l;
      const child = heap[c]!;
      if (this.dueAt(child) >= at) break;
      heap[i] = child;
      child.queueIndex = i;
      i = c;
    }
    heap[i] = item;
    item.queueIndex = i;
  }
}
