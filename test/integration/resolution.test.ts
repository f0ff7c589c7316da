/**
 * RFC 8461 discovery and fetch end to end, against a real DNS server (NSD) and a real HTTPS policy server
 * with a test CA, on a loopback address of this test's own. The resolver is built from config exactly as
 * the daemon builds it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyRoute, type PolicyServer } from '../lab/policy-server.js';
import { parseConfig } from '../../src/config/load.js';
import { assembleResolver, type Assembled } from '../../src/resolver/assemble.js';
import { postfixReply } from '../../src/answer/postfix.js';
import { verdictOf } from '../../src/answer/verdict.js';
import { readPolicy } from '../../src/sts/policy.js';
import type { LookupResult } from '../../src/resolver/types.js';
import type { StsError } from '../../src/errors.js';

const ZONE = 'example.test';
const ENFORCE = 'version: STSv1\nmode: enforce\nmx: mx1.good.example.test\nmx: *.mx.example.net\nmax_age: 86400\n';
const ok = (body: string, extra: PolicyRoute = {}): PolicyRoute => ({ body, ...extra });

/** One domain of the test world: its TXT strings (null = none), its policy route (null = no host). */
interface Case {
  rule: string;
  label: string;
  txt: string[][] | null;
  route: PolicyRoute | null;
  /** Expected: a policy mode, or none:<why>[:<reason class>]. */
  want: string;
  reply?: string;
}

const TXT = (id: string) => [[`v=STSv1; id=${id}`]];
const CASES: Case[] = [
  { rule: 'enforce policy: Postfix must use TLS to a listed MX', label: 'good', txt: TXT('g1'), route: ok(ENFORCE),
    want: 'enforce', reply: 'OK secure match=mx1.good.example.test:.mx.example.net servername=hostname' },
  { rule: 'TXT split into several strings is joined (§3.1)', label: 'split', txt: [['v=STSv1; ', 'id=', 'split1']], route: ok(ENFORCE), want: 'enforce' },
  { rule: 'CRLF policy lines (§3.2)', label: 'crlf', txt: TXT('c1'), route: ok(ENFORCE.replace(/\n/g, '\r\n')), want: 'enforce' },
  { rule: 'text/plain with charset parameter (§3.3)', label: 'charset', txt: TXT('cs1'),
    route: ok(ENFORCE, { headers: { 'content-type': 'text/plain; charset=utf-8' } }), want: 'enforce' },
  { rule: 'testing policy: not enforced', label: 'testing', txt: TXT('t1'), route: ok(ENFORCE.replace('enforce', 'testing')),
    want: 'testing', reply: 'NOTFOUND ' },
  { rule: 'mode none', label: 'none', txt: TXT('n1'), route: ok('version: STSv1\nmode: none\nmax_age: 86400\n'), want: 'none', reply: 'NOTFOUND ' },
  { rule: 'non-STSv1 TXT records are discarded (§3.1)', label: 'mixed', txt: [['v=spf1 -all'], ['v=STSv1; id=m1']], route: ok(ENFORCE), want: 'enforce' },
  { rule: 'no TXT record: no policy, no fetch', label: 'plain', txt: null, route: ok(ENFORCE), want: 'none:no-record' },
  { rule: 'only non-STSv1 TXT records: no policy', label: 'spfonly', txt: [['v=spf1 -all']], route: ok(ENFORCE), want: 'none:no-record' },
  { rule: 'two STSv1 records: no policy (§3.1)', label: 'twice', txt: [['v=STSv1; id=a'], ['v=STSv1; id=b']], route: ok(ENFORCE),
    want: 'none:invalid-record:txt' },
  { rule: 'TXT id with invalid characters', label: 'badid', txt: [['v=STSv1; id=not-valid!']], route: ok(ENFORCE), want: 'none:invalid-record:txt' },
  { rule: 'certificate for another name', label: 'wrongname', txt: TXT('w1'), route: ok(ENFORCE, { cert: 'wrong-name' }), want: 'none:failed:tls' },
  { rule: 'host only in the subject CN, no subjectAltName (RFC 9525 §2: no CN-ID)', label: 'cnonly', txt: TXT('cn1'), route: ok(ENFORCE, { cert: 'cn-only' }),
    want: 'none:failed:tls' },
  { rule: 'expired certificate', label: 'expired', txt: TXT('e1'), route: ok(ENFORCE, { cert: 'expired' }), want: 'none:failed:tls' },
  { rule: 'certificate not yet valid', label: 'future', txt: TXT('f1'), route: ok(ENFORCE, { cert: 'not-yet-valid' }), want: 'none:failed:tls' },
  { rule: 'self-signed certificate', label: 'selfsigned', txt: TXT('s1'), route: ok(ENFORCE, { cert: 'self-signed' }), want: 'none:failed:tls' },
  { rule: 'certificate from an untrusted CA', label: 'otherca', txt: TXT('o1'), route: ok(ENFORCE, { cert: 'other-ca' }), want: 'none:failed:tls' },
  { rule: 'TLS older than 1.2 refused', label: 'legacy', txt: TXT('l1'), route: ok(ENFORCE, { tls: 'legacy' }), want: 'none:failed:tls' },
  { rule: 'redirects are not followed (§3.3)', label: 'redirect', txt: TXT('r1'),
    route: { redirect: 'https://mta-sts.good.example.test/.well-known/mta-sts.txt' }, want: 'none:failed:http-status' },
  { rule: 'HTTP 404', label: 'missing', txt: TXT('404'), route: { status: 404, body: 'not here' }, want: 'none:failed:http-status' },
  { rule: 'HTTP 500', label: 'error500', txt: TXT('500'), route: { status: 500, body: ENFORCE }, want: 'none:failed:http-status' },
  { rule: 'HTTP 204 is not 200', label: 'nocontent', txt: TXT('204'), route: { status: 204 }, want: 'none:failed:http-status' },
  { rule: 'text/html is not text/plain', label: 'html', txt: TXT('h1'),
    route: ok(ENFORCE, { headers: { 'content-type': 'text/html' } }), want: 'none:failed:content-type' },
  { rule: 'no content type at all', label: 'notype', txt: TXT('nt1'), route: ok(ENFORCE, { headers: {} }), want: 'none:failed:content-type' },
  { rule: 'body over 64 KiB, announced', label: 'big', txt: TXT('b1'), route: ok(ENFORCE + 'x'.repeat(70_000)), want: 'none:failed:size' },
  { rule: 'body over 64 KiB, chunked without length', label: 'bigchunked', txt: TXT('bc1'),
    route: ok(ENFORCE + '#'.repeat(70_000), { contentLength: false }), want: 'none:failed:size' },
  { rule: 'body that never ends is cut at the cap', label: 'endless', txt: TXT('en1'),
    route: ok('y'.repeat(70_000), { neverEnd: true, contentLength: false }), want: 'none:failed:size' },
  { rule: 'headers slower than the timeout', label: 'slowheaders', txt: TXT('sh1'), route: ok(ENFORCE, { delayMs: 5_000 }), want: 'none:failed:timeout' },
  { rule: 'body slower than the timeout', label: 'slowbody', txt: TXT('sb1'),
    route: ok(ENFORCE, { slowBody: { bytes: 1, intervalMs: 200 } }), want: 'none:failed:timeout' },
  { rule: 'connection reset mid-body', label: 'reset', txt: TXT('rs1'), route: ok(ENFORCE, { resetAfterBytes: 10 }), want: 'none:failed:connect' },
  { rule: 'a UTF-8 BOM before the policy is dropped (docs/decisions.md)', label: 'bom', txt: TXT('bom1'), route: ok(`\ufeff${ENFORCE}`), want: 'enforce' },
  { rule: 'empty lines and a trailing-dot mx are forgiven (docs/decisions.md)', label: 'lenient', txt: TXT('le1'),
    route: ok(`\n${ENFORCE.replace('mx1.good.example.test', 'mx1.good.example.test.')}\r\n\r\n`), want: 'enforce',
    reply: 'OK secure match=mx1.good.example.test:.mx.example.net servername=hostname' },
  { rule: 'mode "enforced" is still no policy', label: 'enforced', txt: TXT('ed1'), route: ok(ENFORCE.replace('enforce', 'enforced')), want: 'none:failed:parse' },
  { rule: 'policy breaking the grammar', label: 'garbage', txt: TXT('p1'), route: ok('version: STSv1\nmode: enforce\n'), want: 'none:failed:parse' },
  { rule: 'policy host without an address record', label: 'nohost', txt: TXT('nh1'), route: null, want: 'none:failed:dns' },
];

let address: string;
let dns: DnsServer;
let https: PolicyServer;
let dir: string;
let assembled: Assembled;
let strictAssembled: Assembled;

function zoneRecords(): DnsRecord[] {
  const records: DnsRecord[] = [
    // CNAME at _mta-sts: followed to the target's TXT (§3.1 "CNAMEs are followed").
    { name: '_mta-sts.alias', type: 'CNAME', value: `_mta-sts.good.${ZONE}.` },
    { name: 'mta-sts.alias', type: 'A', value: address },
  ];
  for (const c of CASES) {
    for (const strings of c.txt ?? []) records.push({ name: `_mta-sts.${c.label}`, type: 'TXT', value: strings });
    if (c.route) records.push({ name: `mta-sts.${c.label}`, type: 'A', value: address });
  }
  return records;
}

function outcome(r: LookupResult): string {
  if (r.kind === 'policy') return r.entry.policy.mode;
  return ['none', r.why, r.error?.reason].filter(Boolean).join(':');
}

beforeAll(async () => {
  address = await allocateLoopback();
  https = await startPolicyServer({ address });
  for (const c of CASES) if (c.route) https.setRoute(`mta-sts.${c.label}.${ZONE}`, c.route);
  https.setRoute(`mta-sts.alias.${ZONE}`, ok(ENFORCE));
  dns = await startDnsServer({ address, zones: { [ZONE]: { records: zoneRecords() }, 'broken.test': { servfail: true } } });
  dir = await mkdtemp(join(tmpdir(), 'resolution-'));
  await writeFile(join(dir, 'ca.pem'), https.ca.certPem);
  const yaml = (extra = '') => `
dns: { servers: ["${address}"], timeout_ms: 1000, tries: 1 }
fetch: { ca_file: "${join(dir, 'ca.pem')}", allow_private_addresses: ${extra === 'strict' ? 'false' : 'true'}, timeout_ms: 1500 }
cache: { store: memory }
`;
  assembled = assembleResolver(parseConfig(yaml()), null, pino({ level: 'silent' }));
  strictAssembled = assembleResolver(parseConfig(yaml('strict')), null, pino({ level: 'silent' }));
});

afterAll(async () => {
  await assembled?.fetcher.close();
  await strictAssembled?.fetcher.close();
  await dns?.stop();
  await https?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (address) releaseLoopback(address);
});

describe('resolution against real DNS and HTTPS servers', () => {
  it.each(CASES.map((c) => [c.rule, c] as const))('%s', async (_rule, c) => {
    const result = await assembled.resolver.resolveNow(`${c.label}.${ZONE}`);
    expect(outcome(result)).toBe(c.want);
    if (c.reply !== undefined) {
      expect(postfixReply(verdictOf(result), { strictTesting: false, tlsrpt: false })).toBe(c.reply);
    }
  });

  it('a CN-only certificate is refused with reason tls by our identity rule, which says why (the fetcher itself)', async () => {
    const err = await assembled.fetcher.fetch(`cnonly.${ZONE}`).then(() => null, (e: unknown) => e as StsError);
    expect(err).toMatchObject({ reason: 'tls', message: expect.stringMatching(/: ERR_TLS_CERT_ALTNAME_INVALID: the certificate has no subjectAltName DNS-ID/) });
  });

  it('the fetcher hands a BOM to the parser, which drops it as a named deviation', async () => {
    const { text } = await assembled.fetcher.fetch(`bom.${ZONE}`);
    expect(text.charCodeAt(0)).toBe(0xfeff);
    expect(readPolicy(text).deviations).toEqual([{ rule: 'bom', line: 1 }]);
  });

  it('SERVFAIL is a DNS failure, not an absent policy', async () => {
    expect(outcome(await assembled.resolver.resolveNow('x.broken.test'))).toBe('none:failed:dns');
  });

  it('CNAME at _mta-sts is followed to the target record', async () => {
    const r = await assembled.resolver.resolveNow(`alias.${ZONE}`);
    expect(r).toMatchObject({ kind: 'policy', entry: { id: 'g1' } });
  });

  it('no TXT record means no HTTPS request at all', () => {
    expect(https.requests(`mta-sts.plain.${ZONE}`)).toBe(0);
  });

  it('a redirect target is never requested', () => {
    expect(https.requests(`mta-sts.redirect.${ZONE}`)).toBe(1);
  });

  it('the fetch sends SNI for the policy host and speaks TLS 1.2 or newer', () => {
    const [req] = https.requestLog(`mta-sts.good.${ZONE}`);
    expect(req?.sni).toBe(`mta-sts.good.${ZONE}`);
    expect(['TLSv1.2', 'TLSv1.3']).toContain(req?.tlsVersion);
    expect(req?.path).toBe('/.well-known/mta-sts.txt');
  });

  it('by default a policy host on a loopback address is refused before connecting', async () => {
    const before = https.requests(`mta-sts.good.${ZONE}`);
    const r = await strictAssembled.resolver.resolveNow(`good.${ZONE}`);
    expect(outcome(r)).toBe('none:failed:address');
    expect(https.requests(`mta-sts.good.${ZONE}`)).toBe(before);
  });
});
