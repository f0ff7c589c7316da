/**
 * DANE first, end to end through the built daemon (issue 16, RFC 8461 §2): the signed lab
 * (test/lab/dnssec-lab.ts) as `dns.servers`, MTA-STS policies from the lab HTTPS server, and Postfix's
 * question over the socketmap. Each row: a domain as published (DANE, MTA-STS), the map name (zone), and
 * the exact reply.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBlackholeDns } from '../lab/dns-server.js';
import { startDnssecLab, type DnssecLab, type SignedZone } from '../lab/dnssec-lab.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, runCli, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';

const TLSA = `3 1 1 ${'c'.repeat(64)}`;
const enforce = (mx: string) => `version: STSv1\r\nmode: enforce\r\nmx: ${mx}\r\nmax_age: 86400\r\n`;

let lab: DnssecLab;
let web: PolicyServer;
let webAddress: string;
let sidecar: Sidecar;
let client: SocketmapClient;
let eximPort: number;

/** One Exim request line, as `${readsocket}` sends it; the daemon answers one line and closes. */
function exim(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(eximPort, '127.0.0.1');
    let reply = '';
    socket.on('data', (b: Buffer) => (reply += b.toString()));
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
    socket.write(`${request}\n`);
  });
}

/** A signed zone with an MTA-STS policy (TXT + policy host), MX hosts, and TLSA on some of them. */
function zone(mx: Array<[host: string, tlsa: boolean]>, options: { sts?: boolean; signing?: SignedZone['signing'] } = {}): SignedZone {
  const records: SignedZone['records'] = [];
  mx.forEach(([host, tlsa], i) => {
    records.push({ name: '@', type: 'MX', value: `${10 * (i + 1)} ${host}` });
    if (!host.endsWith('.')) {
      records.push({ name: host, type: 'A', value: '127.0.0.1' });
      if (tlsa) records.push({ name: `_25._tcp.${host}`, type: 'TLSA', value: TLSA });
    }
  });
  if (options.sts ?? true) {
    records.push({ name: '_mta-sts', type: 'TXT', value: 'v=STSv1; id=1' }, { name: 'mta-sts', type: 'A', value: webAddress });
  }
  return { signing: options.signing ?? 'valid', records };
}

beforeAll(async () => {
  webAddress = await allocateLoopback();
  web = await startPolicyServer({ address: webAddress });
  lab = await startDnssecLab({
    // DANE on every MX, and an MTA-STS policy that names another host: DANE wins.
    'both.test': zone([['mx1', true]]),
    'mixed.test': zone([['mx1', true], ['mx2', false]]),
    'stsonly.test': zone([['mx1', false]]),
    'insecure.test': zone([['mx1', true]], { signing: 'unsigned' }),
    // The domain is signed, its MX host sits in a zone whose DS matches no key: DANE lookups fail.
    'hostbogus.test': zone([['mx1.bogus.test.', false]]),
    'hostbogus-nosts.test': zone([['mx1.bogus.test.', false]], { sts: false }),
    'bogus.test': zone([['mx1', true]], { signing: 'wrong-ds', sts: false }),
  });
  web.setRoute('mta-sts.both.test', { body: enforce('other.example.net') });
  web.setRoute('mta-sts.mixed.test', { body: enforce('*.mixed.test') });
  web.setRoute('mta-sts.stsonly.test', { body: enforce('mx1.stsonly.test') });
  web.setRoute('mta-sts.insecure.test', { body: enforce('mx1.insecure.test') });
  web.setRoute('mta-sts.hostbogus.test', { body: enforce('mx1.bogus.test') });
  const port = await freePort();
  eximPort = await freePort();
  sidecar = await startSidecar(
    `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
exim: { listen: ["tcp:127.0.0.1:${eximPort}"] }
dns: { servers: ["${lab.resolver}"], timeout_ms: 2000, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
cache: { store: memory }
zones:
  default: { tlsrpt: false }
  nodane: { dane: "off" }
`,
    { 'ca.pem': web.ca.certPem },
  );
  client = await connectSocketmap({ port });
}, 90_000);

afterAll(async () => {
  client?.close();
  await sidecar?.stop();
  await lab?.stop();
  await web?.stop();
  if (webAddress) releaseLoopback(webAddress);
});

describe('the daemon answers DANE first', () => {
  it('logs that the resolver validates DNSSEC', () => {
    expect(sidecar.output()).toMatch(/the resolver validates DNSSEC/);
  });

  const table: Array<[domain: string, map: string, reply: string | RegExp, rule: string]> = [
    ['both.test', 'postfix', 'OK dane-only', 'every MX has usable TLSA: dane-only, though MTA-STS names another host'],
    ['mixed.test', 'postfix', 'OK dane', 'one MX with TLSA, one without: dane'],
    ['stsonly.test', 'postfix', 'OK secure match=mx1.stsonly.test servername=hostname', 'signed, no TLSA: the MTA-STS answer'],
    ['insecure.test', 'postfix', 'OK secure match=mx1.insecure.test servername=hostname', 'unsigned zone: its TLSA is ignored'],
    ['hostbogus.test', 'postfix', /^TEMP DANE lookup failed/, 'DANE lookups fail, MTA-STS enforce: TEMP, never the MTA-STS answer'],
    ['hostbogus-nosts.test', 'postfix', 'NOTFOUND ', 'DANE lookups fail, no MTA-STS: NOTFOUND (Postfix keeps its own DANE)'],
    ['bogus.test', 'postfix', 'NOTFOUND ', 'a bogus domain without MTA-STS: NOTFOUND, Postfix meets the same SERVFAIL'],
    ['both.test', 'nodane', 'OK secure match=other.example.net servername=hostname', 'zone dane: off: MTA-STS as before'],
  ];
  it.each(table)('%s (map %s) -> %s: %s', async (domain, map, reply) => {
    const got = await client.query(map, domain);
    if (typeof reply === 'string') expect(got).toBe(reply);
    else expect(got).toMatch(reply);
  }, 30_000);

  it('asked again, the same reply from the caches', async () => {
    expect(await client.query('postfix', 'both.test')).toBe('OK dane-only');
    expect(await client.query('postfix', 'stsonly.test')).toBe('OK secure match=mx1.stsonly.test servername=hostname');
  });
});

describe('query shows the DANE state', () => {
  const query = (...args: string[]) => runCli(['query', ...args, '--config', join(sidecar.dir, 'config.yml')], { timeoutMs: 30_000 });

  it('both.test: dane-only, per MX host the records, and the reply', async () => {
    const r = await query('both.test');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^dane: +dane-only \(all-usable\)/m);
    expect(r.stdout).toMatch(/^dane mx1\.both\.test: +usable, 1 of 1 usable: 3 1 1 c{64}/m);
    expect(r.stdout).toMatch(/^postfix: +"OK dane-only"/m);
  }, 30_000);

  it('--json: the DANE finding beside the policy', async () => {
    const r = await query('mixed.test', '--json');
    const j = JSON.parse(r.stdout) as { dane: { state: string; hosts: Array<{ name: string; state: string }> }; postfix: string };
    expect(j.dane).toMatchObject({ checked: true, state: 'dane', hosts: [{ name: 'mx1.mixed.test', state: 'usable' }, { name: 'mx2.mixed.test', state: 'no-tlsa' }] });
    expect(j.postfix).toBe('OK dane');
  }, 30_000);

  it('a failed DANE lookup: TEMP, exit status 1', async () => {
    const r = await query('hostbogus.test');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^dane: +temp \(host-lookup-failed\)/m);
    expect(r.stdout).toMatch(/^postfix: +"TEMP DANE lookup failed/m);
  }, 30_000);

  it('zone dane: off says so', async () => {
    const r = await query('both.test', '--zone', 'nodane');
    expect(r.stdout).toMatch(/^dane: +not checked: the zone says dane: off/m);
  }, 30_000);
});

describe('Exim: policy replies carry dane=yes|no', () => {
  const table: Array<[domain: string, reply: string, rule: string]> = [
    ['both.test', 'mode=enforce mx=other.example.net id=1 max_age=86400 dane=yes\n', 'DANE applies: Exim own DANE decides'],
    ['stsonly.test', 'mode=enforce mx=mx1.stsonly.test id=1 max_age=86400 dane=no\n', 'DANE proven absent: the MTA-STS MX list applies'],
    ['hostbogus-nosts.test', 'mode=none reason=no-record dane=yes\n', 'a failed DANE lookup: not ruled out, Exim own DANE meets it'],
  ];
  it.each(table)('policy %s -> %j: %s', async (domain, reply) => {
    expect(await exim(`policy ${domain}`)).toBe(reply);
  }, 30_000);
});

describe('a resolver that never answers', () => {
  it('does not hold up the start for longer than the detection wait, and DANE stays off', async () => {
    const address = await allocateLoopback();
    const blackhole = await startBlackholeDns(address);
    const port = await freePort();
    const started = Date.now();
    const daemon = await startSidecar(`socketmap: { listen: ["tcp:127.0.0.1:${port}"] }\ndns: { servers: ["${address}"], timeout_ms: 5000, tries: 2 }\ncache: { store: memory }\n`);
    try {
      // DNSSEC_DETECT_WAIT_MS (3 s) plus the daemon's own start.
      expect(Date.now() - started).toBeLessThan(9_000);
      expect(daemon.output()).not.toMatch(/validates DNSSEC/);
    } finally {
      await daemon.stop();
      await blackhole.stop();
      releaseLoopback(address);
    }
  }, 30_000);
});

describe('check shows DANE through the CLI', () => {
  it('both.test: the dane step and the MX TLSA records', async () => {
    const r = await runCli(['check', 'both.test', '--json', '--config', join(sidecar.dir, 'config.yml')], { timeoutMs: 60_000 });
    const report = JSON.parse(r.stdout) as { steps: Array<{ id: string; status: string; mx?: string; details?: Record<string, unknown> }> };
    expect(report.steps.find((s) => s.id === 'dane')).toMatchObject({ status: 'pass', details: { state: 'dane-only' } });
    expect(report.steps.find((s) => s.id === 'mx-tlsa')).toMatchObject({ status: 'pass', mx: 'mx1.both.test' });
  }, 60_000);
});
