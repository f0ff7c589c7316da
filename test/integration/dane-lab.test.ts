/**
 * The DANE branch against a real DNSSEC world: zones signed at test time (ldnsutils), served by NSD
 * under a signed lab root, and a validating Unbound with the lab root's trust anchor (test/lab/dnssec-lab.ts).
 * Each row is an RFC 7672 §2.2 case: the zone as published, and what DANE means for the domain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { createSecureDnsClient, detectValidation, encodeQuery } from '../../src/net/secure-dns.js';
import { DaneResolver, type DaneHostState, type DaneState, type DaneWhy } from '../../src/resolver/dane.js';
import { startBlackholeDns } from '../lab/dns-server.js';
import { startDnssecLab, type DnssecLab, type SignedZone } from '../lab/dnssec-lab.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';

const H32 = 'a'.repeat(64);
const H64 = 'b'.repeat(128);
const usable = (name: string) => ({ name: `_25._tcp.${name}`, type: 'TLSA', value: `3 1 1 ${H32}` });

const ZONES: Record<string, SignedZone> = {
  'dane-only.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: '@', type: 'MX', value: '20 mx2' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      { name: 'mx2', type: 'AAAA', value: '::1' },
      usable('mx1'),
      { name: '_25._tcp.mx2', type: 'TLSA', value: `2 0 2 ${H64}` },
    ],
  },
  'mixed.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: '@', type: 'MX', value: '20 mx2' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      { name: 'mx2', type: 'A', value: '127.0.0.2' },
      usable('mx1'),
    ],
  },
  'notlsa.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
    ],
  },
  'unsigned.test': {
    signing: 'unsigned',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      usable('mx1'),
    ],
  },
  'bogus.test': {
    signing: 'wrong-ds',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      usable('mx1'),
    ],
  },
  'expired.test': {
    signing: 'expired',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      usable('mx1'),
    ],
  },
  'nullmx.test': { signing: 'valid', records: [{ name: '@', type: 'MX', value: '0 .' }] },
  'cname.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mail' },
      { name: 'mail', type: 'CNAME', value: 'mx1.dane-only.test.' },
    ],
  },
  'implicit.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'A', value: '127.0.0.1' },
      usable('implicit.test.'),
    ],
  },
  'unusable.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      { name: '_25._tcp.mx1', type: 'TLSA', value: `1 1 1 ${H32}` },
    ],
  },
  'insecure-host.test': { signing: 'valid', records: [{ name: '@', type: 'MX', value: '10 mx1.unsigned.test.' }] },
  'partly-bogus.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1.dane-only.test.' },
      { name: '@', type: 'MX', value: '20 mx1.bogus.test.' },
    ],
  },
  // 12 TLSA records of 300 bytes each: the reply cannot fit the 1232-byte EDNS buffer, so it comes
  // back truncated over UDP and whole over TCP (RFC 7766 §5).
  'big.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: '127.0.0.1' },
      ...Array.from({ length: 12 }, (_, i) => ({ name: '_25._tcp.mx1', type: 'TLSA', value: `3 1 0 ${i.toString(16).padStart(2, '0').repeat(300)}` })),
    ],
  },
  'bogus-host.test': {
    signing: 'valid',
    records: [
      { name: '@', type: 'MX', value: '10 mx1.notlsa.test.' },
      { name: '@', type: 'MX', value: '20 mx1.bogus.test.' },
    ],
  },
};

let lab: DnssecLab;

beforeAll(async () => {
  lab = await startDnssecLab(ZONES);
}, 60_000);

afterAll(async () => {
  await lab?.stop();
});

function resolver(servers = [lab.resolver]): DaneResolver {
  return new DaneResolver(createSecureDnsClient({ servers, timeoutMs: 2_000, tries: 1 }), { minTtlMs: 0, tempTtlMs: 0 });
}

describe('DANE outcome per domain (RFC 7672 §2.2)', () => {
  const table: Array<[domain: string, state: DaneState, why: DaneWhy, hosts: DaneHostState[], rule: string]> = [
    ['dane-only.test', 'dane-only', 'all-usable', ['usable', 'usable'], 'signed MX, every MX host with usable TLSA (DANE-EE 3 1 1, DANE-TA 2 0 2)'],
    ['mixed.test', 'dane', 'some-usable', ['usable', 'no-tlsa'], 'one MX host with TLSA, one proven without'],
    ['notlsa.test', 'none', 'no-tlsa', ['no-tlsa'], 'signed, TLSA denied with NSEC: MTA-STS decides'],
    ['unsigned.test', 'none', 'insecure-mx', [], 'insecure delegation: TLSA records ignored (not authenticated)'],
    ['bogus.test', 'temp', 'mx-lookup-failed', [], 'DS matching no key: bogus, SERVFAIL, never a downgrade'],
    ['expired.test', 'temp', 'mx-lookup-failed', [], 'expired signatures: bogus, SERVFAIL, never a downgrade'],
    ['nullmx.test', 'null-mx', 'null-mx', [], 'RFC 7505 null MX, authenticated'],
    ['cname.test', 'dane-only', 'all-usable', ['usable'], '§2.2.3: TLSA at the CNAME-expanded MX host name'],
    ['implicit.test', 'dane-only', 'all-usable', ['usable'], 'no MX: the domain is its own MX host (RFC 5321 §5.1)'],
    ['unusable.test', 'dane', 'records-unusable', ['unusable'], 'only PKIX-EE(1) TLSA: present, unusable for SMTP (§3.1.3)'],
    ['insecure-host.test', 'none', 'no-tlsa', ['insecure'], '§2.2.2: MX host in an unsigned zone: no DANE for it'],
    ['partly-bogus.test', 'dane', 'some-usable', ['usable', 'temp'], 'one usable host, one whose lookups fail'],
    ['bogus-host.test', 'temp', 'host-lookup-failed', ['no-tlsa', 'temp'], 'a failed host lookup is not proof of no TLSA'],
    ['nxdomain.dane-only.test', 'none', 'nxdomain', [], 'authenticated NXDOMAIN: no MX hosts to protect'],
  ];
  it.each(table)('%s -> %s (%s): %s', async (domain, state, why, hosts) => {
    const result = await resolver().resolve(domain);
    expect({ state: result.state, why: result.why, hosts: result.hosts.map((h) => h.state) }, JSON.stringify(result)).toEqual({ state, why, hosts });
  });

  it('cname.test: the records come from the expanded name', async () => {
    const result = await resolver().resolve('cname.test');
    expect(result.hosts[0]).toMatchObject({ name: 'mail.cname.test', tlsaName: '_25._tcp.mx1.dane-only.test' });
    expect(result.hosts[0]!.records.map((r) => r.unusable)).toEqual([null]);
  });

  it('unusable.test says why each record cannot be used', async () => {
    const result = await resolver().resolve('unusable.test');
    expect(result.hosts[0]!.records.map((r) => r.unusable)).toEqual(['pkix-usage']);
  });

  it('a resolver that does not validate (the authoritative server itself) never yields DANE', async () => {
    const result = await resolver([lab.authority]).resolve('dane-only.test');
    expect(result.state).toBe('none');
  });

  it('a resolver that does not answer: temporary, never none', async () => {
    // Port 9 on the lab address: nothing listens there, so the queries are refused or time out.
    const r = new DaneResolver(createSecureDnsClient({ servers: [`${lab.resolver}:9`], timeoutMs: 200, tries: 1 }), { tempTtlMs: 0 });
    expect((await r.resolve('dane-only.test')).state).toBe('temp');
  });
});

describe('validation detection at start', () => {
  it('the lab Unbound validates: the root SOA comes back with AD', async () => {
    const status = await detectValidation(createSecureDnsClient({ servers: [lab.resolver], timeoutMs: 2_000, tries: 1 }));
    expect(status).toMatchObject({ validates: true });
  });

  it('the authoritative NSD does not: no AD', async () => {
    const status = await detectValidation(createSecureDnsClient({ servers: [lab.authority], timeoutMs: 2_000, tries: 1 }));
    expect(status.validates).toBe(false);
    expect(status.detail).toMatch(/without AD/);
  });
});

describe('cache', () => {
  it('single-flight and cached by TTL (bounded below by minTtlMs)', async () => {
    let resolutions = 0;
    const r = new DaneResolver(createSecureDnsClient({ servers: [lab.resolver], timeoutMs: 2_000, tries: 1 }), { minTtlMs: 60_000 }, () => resolutions++);
    const [a, b] = await Promise.all([r.lookup('mixed.test'), r.lookup('mixed.test')]);
    expect(a).toBe(b);
    expect(await r.lookup('mixed.test')).toBe(a);
    expect(r.lookupHot('mixed.test')).toBe(a);
    expect(resolutions).toBe(1);
  });
});

describe('answer deadline', () => {
  it('a resolver that never answers: temp (deadline) at the deadline, the resolution goes on and is cached', async () => {
    const address = await allocateLoopback();
    const blackhole = await startBlackholeDns(address);
    try {
      const r = new DaneResolver(createSecureDnsClient({ servers: [address], timeoutMs: 800, tries: 1 }), { answerDeadlineMs: 200, tempTtlMs: 60_000 });
      const started = Date.now();
      const first = await r.lookup('dane-only.test');
      expect(first).toMatchObject({ state: 'temp', why: 'deadline' });
      expect(Date.now() - started).toBeLessThan(700);
      expect(r.lookupHot('dane-only.test')).toBeUndefined();
      // The same resolution ends at the DNS timeout: a temp result, remembered for tempTtlMs.
      await new Promise((ok) => setTimeout(ok, 900));
      expect(r.lookupHot('dane-only.test')).toMatchObject({ state: 'temp', why: 'mx-lookup-failed' });
    } finally {
      await blackhole.stop();
      releaseLoopback(address);
    }
  });
});

describe('large replies', () => {
  it('a TLSA RRset too big for UDP is read whole over TCP after TC', async () => {
    // Over UDP alone the resolver sets TC (RFC 1035 §4.1.1) ...
    const udp = createSocket('udp4');
    const reply = await new Promise<Buffer>((resolve, reject) => {
      udp.once('message', resolve);
      udp.once('error', reject);
      udp.send(encodeQuery(7, '_25._tcp.mx1.big.test', 'TLSA'), 53, lab.resolver);
    });
    udp.close();
    expect(reply[2]! & 0x02, 'TC bit').toBe(0x02);
    // ... and the client goes on over TCP.
    const client = createSecureDnsClient({ servers: [lab.resolver], timeoutMs: 2_000, tries: 1 });
    const r = await client.query('_25._tcp.mx1.big.test', 'TLSA');
    expect(r).toMatchObject({ rcode: 'NOERROR', authenticated: true });
    expect(r.answers.filter((a) => a.type === 'TLSA')).toHaveLength(12);
    const result = await resolver().resolve('big.test');
    expect(result.state).toBe('dane-only');
    expect(result.hosts[0]!.records).toHaveLength(12);
  });
});
