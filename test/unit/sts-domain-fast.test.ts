/**
 * normalizeDomainKey answers keys already in normal form (lower-case LDH) in one pass. That shortcut
 * must give exactly the general path's answer: checked here against the same key with a trailing dot,
 * which the shortcut never takes and the general path treats as the same name.
 */
import { describe, expect, it } from 'vitest';
import { normalizeDomainKey } from '../../src/sts/domain.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789.-';

/** Deterministic keys: mostly near-valid domains, with every edge the shortcut looks at. */
function* keys(count: number): Generator<string> {
  let seed = 0x2545f491;
  const rnd = (n: number) => {
    // xorshift32
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const fixed = [
    'example.com', 'a.b', 'a.1', '1.a', '1.2', '1.2.3.4', '1.2.3.a', 'a-.com', '-a.com', 'a.-com', 'a.com-',
    'a..com', '.a.com', 'a.com.', 'localhost', 'xn--bcher-kva.example', '0x1.2', 'a.1-2', 'a.1-', `${'a'.repeat(63)}.com`,
    `${'a'.repeat(64)}.com`, `a.${'b'.repeat(63)}`, `a.${'b'.repeat(64)}`, `${'a.'.repeat(126)}bc`, `${'a.'.repeat(126)}b`,
    `${'a.'.repeat(127)}bc`, '', '.', '-', 'a', 'a.b.c.d.e.f.g',
  ];
  yield* fixed;
  for (let i = 0; i < count; i++) {
    // A few labels of LDH characters, then a few random edits with '.', '-' and digits.
    const labels = 1 + rnd(4);
    const parts: string[] = [];
    for (let l = 0; l < labels; l++) {
      const length = rnd(8) === 0 ? 60 + rnd(8) : 1 + rnd(8);
      let label = '';
      for (let j = 0; j < length; j++) label += ALPHABET[rnd(ALPHABET.length - 2)];
      parts.push(label);
    }
    let k = parts.join('.');
    for (let e = rnd(3); e > 0; e--) {
      const at = rnd(k.length + 1);
      k = k.slice(0, at) + ALPHABET[26 + rnd(12)] + k.slice(at + (rnd(2) === 0 ? 1 : 0));
    }
    if (rnd(20) === 0) k = `${k}.${k}.${k}.${k}`;
    yield k;
  }
}

describe('normalizeDomainKey: normal-form shortcut', () => {
  it('answers a lower-case LDH domain exactly as the general path does', () => {
    let domains = 0;
    const wrong: string[] = [];
    for (const k of keys(60_000)) {
      const r = normalizeDomainKey(k);
      if (r.kind !== 'domain' || k.endsWith('.')) continue;
      domains++;
      const general = normalizeDomainKey(`${k}.`);
      if (r.domain !== k || general.kind !== 'domain' || general.domain !== k) wrong.push(k);
    }
    expect(wrong).toEqual([]);
    expect(domains).toBeGreaterThan(10_000);
  });

  it('leaves everything else to the general path', () => {
    expect(normalizeDomainKey('Example.COM')).toEqual({ kind: 'domain', domain: 'example.com' });
    expect(normalizeDomainKey('example.com.')).toEqual({ kind: 'domain', domain: 'example.com' });
    expect(normalizeDomainKey('1.2.3.4').kind).toBe('skip');
    expect(normalizeDomainKey('a.1').kind).toBe('invalid');
    expect(normalizeDomainKey('localhost')).toEqual({ kind: 'skip', why: 'single-label' });
    expect(normalizeDomainKey('example.com:25')).toEqual({ kind: 'domain', domain: 'example.com' });
    expect(normalizeDomainKey('a-.com').kind).toBe('invalid');
    expect(normalizeDomainKey(`${'a'.repeat(64)}.com`).kind).toBe('invalid');
  });
});
