/** ClockCache (src/resolver/clock-cache.ts): the hot tier's and the DANE cache's bounds and eviction order. */
import { describe, expect, it } from 'vitest';
import { ClockCache, type CacheSlot } from '../../src/resolver/clock-cache.js';

type Item = CacheSlot & { name: string; weight: number };
const item = (name: string, weight = 1): Item => ({ name, weight, used: false, bytes: 0 });

function cache(maxEntries: number, maxBytes = 1_000_000) {
  const disposed: string[] = [];
  const c = new ClockCache<string, Item>({
    maxEntries,
    maxBytes,
    bytesOf: (v) => v.weight,
    dispose: (v, k) => disposed.push(`${k}=${v.name}`),
  });
  return { c, disposed, keys: () => [...c.entries()].map(([k]) => k) };
}

describe('ClockCache', () => {
  it('evicts the oldest entry not read since it was set, when over maxEntries', () => {
    const { c, disposed } = cache(3);
    for (const k of ['a', 'b', 'c']) c.set(k, item(k));
    c.get('a');
    c.set('d', item('d'));
    // a was read: second chance; b was not: out.
    expect(disposed).toEqual(['b=b']);
    expect(c.has('a') && c.has('c') && c.has('d')).toBe(true);
    expect(c.size).toBe(3);
  });

  it('a second chance is spent: an entry not read again goes at the next lap', () => {
    const { c, disposed } = cache(2);
    c.set('a', item('a'));
    c.set('b', item('b'));
    c.get('a');
    c.set('c', item('c')); // a moved to the newest end, b out
    c.set('d', item('d')); // c and a unread now: the oldest under the hand goes
    expect(disposed).toEqual(['b=b', 'c=c']);
    expect([c.has('a'), c.has('d')]).toEqual([true, true]);
  });

  it('never evicts the value just set, even when every other entry was read', () => {
    const { c } = cache(1);
    c.set('a', item('a'));
    c.get('a');
    expect(c.set('b', item('b'))).toBe(true);
    expect([c.has('a'), c.has('b')]).toEqual([false, true]);
  });

  it('keeps the byte bound: evicts until the sum of bytesOf fits', () => {
    const { c, disposed } = cache(100, 10);
    for (const k of ['a', 'b', 'c']) c.set(k, item(k, 3));
    expect(c.calculatedSize).toBe(9);
    c.set('d', item('d', 7));
    expect(disposed).toEqual(['a=a', 'b=b']);
    expect(c.calculatedSize).toBe(10);
  });

  it('refuses a value larger than maxBytes, and the old value under its key goes', () => {
    const { c, disposed } = cache(10, 10);
    c.set('a', item('a1', 2));
    expect(c.set('a', item('a2', 11))).toBe(false);
    expect(c.has('a')).toBe(false);
    expect(disposed).toEqual(['a=a1']);
    expect(c.calculatedSize).toBe(0);
  });

  it('replacing a value disposes the old one, counts the new size and makes it the newest', () => {
    const { c, disposed, keys } = cache(10);
    c.set('a', item('a1', 2));
    c.set('b', item('b', 1));
    c.set('a', item('a2', 5));
    expect(disposed).toEqual(['a=a1']);
    expect(c.calculatedSize).toBe(6);
    expect(keys()).toEqual(['b', 'a']);
  });

  it('delete and clear pass every value to dispose and zero the count', () => {
    const { c, disposed } = cache(10);
    for (const k of ['a', 'b', 'c']) c.set(k, item(k, 2));
    expect(c.delete('b')).toBe(true);
    expect(c.delete('b')).toBe(false);
    c.clear();
    expect(disposed).toEqual(['b=b', 'a=a', 'c=c']);
    expect([c.size, c.calculatedSize]).toEqual([0, 0]);
    c.set('e', item('e'));
    expect(c.get('e')?.name).toBe('e');
  });

  it('peek does not give a second chance; get does', () => {
    const { c, disposed } = cache(2);
    c.set('a', item('a'));
    c.set('b', item('b'));
    c.peek('a');
    c.set('c', item('c'));
    expect(disposed).toEqual(['a=a']);
  });

  it('when every entry was read, one set spends a bounded number of second chances and still evicts', () => {
    const n = 1_000;
    const { c } = cache(n);
    for (let i = 0; i < n; i++) c.set(`k${i}`, item(`k${i}`));
    for (let i = 0; i < n; i++) c.get(`k${i}`);
    c.set('new', item('new'));
    expect(c.size).toBe(n);
    const moved = [...c.entries()].filter(([, v]) => !v.used).length;
    // The new entry, and at most MAX_SECOND_CHANCES (64) entries that lost their flag on the way.
    expect(moved).toBeGreaterThan(1);
    expect(moved).toBeLessThanOrEqual(65);
  });

  it('stays within its bounds over many laps of the hand, with deletions under it', () => {
    const { c } = cache(50, 120);
    for (let i = 0; i < 5_000; i++) {
      c.set(`k${i}`, item(`k${i}`, 1 + (i % 5)));
      if (i % 3 === 0) c.get(`k${i - 7}`);
      if (i % 11 === 0) c.delete(`k${i - 20}`);
      expect(c.size).toBeLessThanOrEqual(50);
      expect(c.calculatedSize).toBeLessThanOrEqual(120);
    }
    const sum = [...c.entries()].reduce((s, [, v]) => s + v.weight, 0);
    expect(c.calculatedSize).toBe(sum);
  });

  it('refuses bounds below 1', () => {
    expect(() => new ClockCache({ maxEntries: 0, maxBytes: 10, bytesOf: () => 1 })).toThrow(RangeError);
    expect(() => new ClockCache({ maxEntries: 10, maxBytes: 0, bytesOf: () => 1 })).toThrow(RangeError);
  });
});
