/** The refresher's queue (src/resolver/due-queue.ts): soonest first, removal anywhere, items stay queued. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DueQueue } from '../../src/resolver/due-queue.js';

interface Item {
  name: string;
  at: number;
  queueIndex: number;
}
const item = (name: string, at: number): Item => ({ name, at, queueIndex: -1 });
const queue = () => new DueQueue<Item>((i) => i.at);
const names = (xs: Item[]) => xs.map((x) => x.name);

describe('DueQueue', () => {
  it.each<[string, Array<[string, number]>, number, number, string[]]>([
    // case, items (name, due at), now, limit, expected due names
    ['soonest first', [['c', 30], ['a', 10], ['b', 20]], 100, 10, ['a', 'b', 'c']],
    ['only what is due at now', [['a', 10], ['b', 20], ['c', 30]], 20, 10, ['a', 'b']],
    ['due exactly at now counts', [['a', 20]], 20, 10, ['a']],
    ['nothing due', [['a', 21]], 20, 10, []],
    ['at most limit, the soonest', [['a', 3], ['b', 1], ['c', 2]], 100, 2, ['b', 'c']],
  ])('%s', (_case, items, now, limit, want) => {
    const q = queue();
    for (const [n, at] of items) q.add(item(n, at));
    expect(names(q.due(now, limit))).toEqual(want);
    expect(q.size).toBe(items.length); // due() leaves them queued
  });

  it('skips what accept() refuses (a refresh in flight) and still fills the batch', () => {
    const q = queue();
    for (const [n, at] of [['a', 1], ['b', 2], ['c', 3]] as const) q.add(item(n, at));
    expect(names(q.due(100, 2, (i) => i.name !== 'a'))).toEqual(['b', 'c']);
    expect(q.size).toBe(3);
  });

  it('re-scheduling (add again with a new time) moves an item, once', () => {
    const q = queue();
    const a = item('a', 1);
    const b = item('b', 2);
    q.add(a);
    q.add(b);
    q.remove(a);
    a.at = 50; // refreshed: due again later
    q.add(a);
    expect(names(q.due(10, 10))).toEqual(['b']);
    expect(names(q.due(100, 10))).toEqual(['b', 'a']);
    q.add(a); // added while queued: moved, not duplicated
    expect(q.size).toBe(2);
  });

  it('removal (eviction, expiry) takes an item out anywhere; removing twice is harmless', () => {
    const q = queue();
    const xs = [5, 3, 8, 1, 9, 2].map((at, i) => item(`x${i}`, at));
    for (const x of xs) q.add(x);
    q.remove(xs[3]!);
    q.remove(xs[3]!);
    q.remove(xs[0]!);
    expect(xs[3]!.queueIndex).toBe(-1);
    expect(q.due(100, 10).map((x) => x.at)).toEqual([2, 3, 8, 9]);
  });

  it('any sequence of adds and removes gives the remaining items in order of due time (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.boolean()), { maxLength: 200 }), (ops) => {
        const q = queue();
        const live = new Set<Item>();
        ops.forEach(([at, drop], i) => {
          const x = item(String(i), at);
          q.add(x);
          live.add(x);
          if (drop && live.size > 0) {
            const victim = [...live][at % live.size]!;
            q.remove(victim);
            live.delete(victim);
          }
        });
        const got = q.due(Infinity, Infinity).map((x) => x.at);
        expect(got).toEqual([...live].map((x) => x.at).sort((a, b) => a - b));
        expect(q.size).toBe(live.size);
      }),
    );
  });
});
