/**
 * The DANE cache (src/resolver/dane.ts): bounded in entries and in bytes, kept by the DNS TTLs within
 * [minTtlMs, maxTtlMs], failures for tempTtlMs. The DNS answers come from a declarative table (what a
 * validating resolver would say); the signed-lab tests (test/integration/dane-lab.test.ts) use a real one.
 */
import { describe, expect, it } from 'vitest';
import type { SecureDnsClient, SecureQueryType, SecureResponse } from '../../src/net/secure-dns.js';
import { DaneResolver, daneResultBytes } from '../../src/resolver/dane.js';

const ad = (answers: SecureResponse['answers']): SecureResponse => ({ rcode: 'NOERROR', authenticated: true, answers, authorities: [] });

/** example.test: one MX host with one usable TLSA record, every RRset with TTL `ttl` seconds. */
function world(ttl: number, tlsaBytes = 32): { client: SecureDnsClient; asked: () => number } {
  let asked = 0;
  const table: Record<string, SecureResponse> = {
    'example.test MX': ad([{ name: 'example.test', type: 'MX', ttl, data: { preference: 10, exchange: 'mx.example.test' } }]),
    'mx.example.test A': ad([{ name: 'mx.example.test', type: 'A', ttl, data: '192.0.2.1' }]),
    'mx.example.test AAAA': ad([]),
    '_25._tcp.mx.example.test TLSA': ad([
      { name: '_25._tcp.mx.example.test', type: 'TLSA', ttl, data: { usage: 3, selector: 1, matchingType: tlsaBytes === 32 ? 1 : 0, certificate: Buffer.alloc(tlsaBytes, 1) } },
    ]),
  };
  const client: SecureDnsClient = {
    async query(name: string, type: SecureQueryType) {
      asked++;
      const r = table[`${name} ${type}`];
      if (r === undefined) throw new Error(`no such question ${name} ${type}`);
      return r;
    },
  };
  return { client, asked: () => asked };
}

describe('MX sets at the edges', () => {
  const only = (answers: SecureResponse['answers']): SecureDnsClient => ({ query: async () => ad(answers) });
  it('several null MX records: null-mx, never dane-only over no host at all', async () => {
    const mx = (preference: number) => ({ name: 'example.test', type: 'MX', ttl: 300, data: { preference, exchange: '.' } });
    const result = await new DaneResolver(only([mx(0), mx(10)]), { maxEntries: 1 }).resolve('example.test');
    expect(result).toMatchObject({ state: 'null-mx', hosts: [] });
  });
});

describe('DANE cache', () => {
  it('kept for the smallest TTL, at least minTtlMs', async () => {
    let now = 1_000_000;
    const { client, asked } = world(30);
    const r = new DaneResolver(client, { minTtlMs: 5_000 }, undefined, () => now);
    expect((await r.lookup('example.test')).state).toBe('dane-only');
    const first = asked();
    now += 29_000;
    await r.lookup('example.test');
    expect(asked()).toBe(first);
    now += 2_000;
    await r.lookup('example.test');
    expect(asked()).toBe(2 * first);
  });

  it('TTL 0 is kept minTtlMs; never longer than maxTtlMs', async () => {
    let now = 0;
    const zero = new DaneResolver(world(0).client, { minTtlMs: 5_000 }, undefined, () => now);
    expect((await zero.lookup('example.test')).expiresAt).toBe(5_000);
    const long = new DaneResolver(world(86_400).client, { maxTtlMs: 3_600_000 }, undefined, () => now);
    expect((await long.lookup('example.test')).expiresAt).toBe(3_600_000);
  });

  it('a result bigger than maxBytes is answered but not kept', async () => {
    const { client, asked } = world(300, 4_000);
    const r = new DaneResolver(client, { maxBytes: 2_000 });
    const result = await r.lookup('example.test');
    expect(daneResultBytes(result)).toBeGreaterThan(2_000);
    expect(r.lookupHot('example.test')).toBeUndefined();
    await r.lookup('example.test');
    expect(asked()).toBe(8);
  });

  it('at most maxEntries domains', async () => {
    const { client } = world(300);
    const r = new DaneResolver(client, { maxEntries: 1 });
    await r.lookup('example.test');
    expect(r.lookupHot('example.test')).toBeDefined();
    await r.lookup('other.test'); // a failure: temp, cached in its place
    expect(r.lookupHot('example.test')).toBeUndefined();
    expect(r.lookupHot('other.test')).toMatchObject({ state: 'temp', why: 'mx-lookup-failed' });
  });
});
