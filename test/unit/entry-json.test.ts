/** Stored entries read back (src/cache/entry-json.ts): what the stores return, and what it shares. */
import { describe, expect, it } from 'vitest';
import { canonicalPolicy, decodeEntry } from '../../src/cache/entry-json.js';
import { parsePolicy } from '../../src/sts/policy.js';

const text = 'version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n';
const entry = (policy: unknown) =>
  JSON.stringify({ domain: 'example.com', id: '1', policy, text, fetchedAt: 1, expiresAt: 2, checkedAt: 1, lastError: null, failures: 0 });

describe('decodeEntry', () => {
  it.each<[string, string]>([
    ['not JSON', '{'],
    ['not an object', '"x"'],
    ['a field of the wrong type', entry(parsePolicy(text)).replace('"failures":0', '"failures":"0"')],
    ['no policy', entry(null)],
  ])('refuses %s', (_case, json) => {
    expect(decodeEntry(json)).toBeUndefined();
  });

  it('gives back the policy as written', () => {
    const policy = parsePolicy(text);
    expect(decodeEntry(entry(policy))?.policy).toEqual(policy);
  });

  it('policies without extensions share one empty, frozen list; one with extensions keeps its own', () => {
    const a = decodeEntry(entry(parsePolicy(text)))!.policy;
    const b = decodeEntry(entry(parsePolicy(text)))!.policy;
    expect(a.extensions).toBe(b.extensions);
    expect(Object.isFrozen(a.extensions)).toBe(true);
    const c = decodeEntry(entry(parsePolicy(`${text}x_note: hello\n`)))!.policy;
    expect(c.extensions).toEqual([['x_note', 'hello']]);
    expect(Object.isFrozen(c.extensions)).toBe(false);
  });
});

describe('canonicalPolicy', () => {
  it.each<[string, string]>([
    ['enforce', 'enforce'],
    ['testing', 'testing'],
    ['none', 'none'],
    // Not ours to judge here: a store's unknown mode stays as read.
    ['bogus', 'bogus'],
  ])('mode %s reads back as %s', (mode, want) => {
    const p = canonicalPolicy(JSON.parse(JSON.stringify({ version: 'STSv1', mode, maxAge: 1, mx: [], extensions: [] })));
    expect(p.mode).toBe(want);
    expect(p.version).toBe('STSv1');
  });
});
