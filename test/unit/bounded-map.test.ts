/** BoundedMap (src/resolver/bounded-map.ts): the resolver's fetch-pacing and failure marks, bounded. */
import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../../src/resolver/bounded-map.js';

describe('BoundedMap', () => {
  it.each<[string, Array<[string, number]>, number, string[]]>([
    // case, sets in order, max, keys left (oldest first)
    ['under the bound keeps all', [['a', 1], ['b', 2]], 3, ['a', 'b']],
    ['past the bound the oldest set goes', [['a', 1], ['b', 2], ['c', 3]], 2, ['b', 'c']],
    ['setting a key again makes it the newest', [['a', 1], ['b', 2], ['a', 3], ['c', 4]], 2, ['a', 'c']],
    ['max 1 keeps the last', [['a', 1], ['b', 2]], 1, ['b']],
  ])('%s', (_case, sets, max, want) => {
    const m = new BoundedMap<string, number>(max);
    for (const [k, v] of sets) m.set(k, v);
    expect([...m.entries()].map(([k]) => k)).toEqual(want);
    expect(m.size).toBe(want.length);
  });

  it('get, delete', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1);
    expect(m.get('a')).toBe(1);
    expect(m.delete('a')).toBe(true);
    expect(m.get('a')).toBeUndefined();
    expect(m.delete('a')).toBe(false);
  });

  it('keeps evicting the oldest set over many rounds, with deletions and re-sets in between', () => {
    const m = new BoundedMap<string, number>(10);
    const order: string[] = []; // the model: keys oldest first
    for (let i = 0; i < 2_000; i++) {
      const key = `k${i % 37}`;
      m.set(key, i);
      if (order.includes(key)) order.splice(order.indexOf(key), 1);
      else if (order.length >= 10) order.shift();
      order.push(key);
      if (i % 7 === 0) {
        const gone = order.shift()!;
        m.delete(gone);
      }
      expect([...m.entries()].map(([k]) => k)).toEqual(order);
    }
  });

  it('refuses a bound below 1', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
  });
});
