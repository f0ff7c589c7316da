/**
 * Postfix's own socketmap client (`postmap -q`) against the built daemon, which resolves from a real DNS
 * server and a real HTTPS policy server. What postmap prints is what smtp(8) gets as its TLS policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { postmapQuery } from '../lab/postfix-client.js';
import { readPostfixPolicy } from '../unit/postfix-attributes.js';

const ZONE = 'mail.test';
const policy = (mode: string, ...mx: string[]) =>
  `version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: 86400\n`;

/** As many mx lines as fit the 64 KiB policy limit (RFC 8461 §3.3): far more than a TLSRPT reply can hold. */
const BIG_MX = Array.from({ length: 2700 }, (_, i) => `m${i}.big.mail.test`);

// label -> policy body (null: no TXT record published)
const DOMAINS: Record<string, string | null> = {
  enforce: policy('enforce', 'mx1.enforce.mail.test', '*.relay.mail.test'),
  testing: policy('testing', 'mx.testing.mail.test'),
  none: policy('none'),
  plain: null,
  // A valid policy whose extension line holds "{", which Postfix's attribute parser cannot take (issue 13).
  braces: `${policy('enforce', 'mx.braces.mail.test')}note: see {docs\n`,
  big: policy('enforce', ...BIG_MX),
};

let address: string;
let dns: DnsServer;
let https: PolicyServer;
let sidecar: Sidecar;
let tcpMap: string;
let port: number;
const map = (zone: string) => tcpMap.replace(/:postfix$/, `:${zone}`);

beforeAll(async () => {
  address = await allocateLoopback();
  https = await startPolicyServer({ address });
  const records: DnsRecord[] = [];
  for (const [label, body] of Object.entries(DOMAINS)) {
    if (body === null) continue;
    records.push({ name: `_mta-sts.${label}`, type: 'TXT', value: [`v=STSv1; id=${label}1`] });
    records.push({ name: `mta-sts.${label}`, type: 'A', value: address });
    https.setRoute(`mta-sts.${label}.${ZONE}`, { body });
  }
  records.push({ name: '_mta-sts.badcert', type: 'TXT', value: ['v=STSv1; id=b1'] });
  records.push({ name: 'mta-sts.badcert', type: 'A', value: address });
  https.setRoute(`mta-sts.badcert.${ZONE}`, { body: DOMAINS.enforce!, cert: 'expired' });
  dns = await startDnsServer({ address, zones: { [ZONE]: { records } } });

  port = await freePort();
  tcpMap = `socketmap:inet:127.0.0.1:${port}:postfix`;
  sidecar = await startSidecar(config(port), { 'ca.pem': https.ca.certPem });
}, 60_000);

/** The daemon's config; `socketmap` settings besides the listeners are given as YAML lines. */
function config(listenPort: number, socketmapExtra = ''): string {
  return `
socketmap:
  listen: ["tcp:127.0.0.1:${listenPort}", "unix:$DIR/socketmap.sock"]
${socketmapExtra}
dns: { servers: ["${address}"], timeout_ms: 2000, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
cache: { store: sqlite, path: "$DIR/cache.db" }
zones:
  strict: { strict_testing: true }
  reporting: { tlsrpt: true }
log: { level: info }
`;
}

/** The daemon's log lines so far (pino JSON). */
const logLines = () =>
  sidecar
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

afterAll(async () => {
  await sidecar?.stop();
  await dns?.stop();
  await https?.stop();
  if (address) releaseLoopback(address);
});

describe('postmap -q against the daemon', () => {
  const SECURE = 'secure match=mx1.enforce.mail.test:.relay.mail.test servername=hostname';

  it('enforce: secure, matching the listed MX patterns, SNI from the MX host name', async () => {
    expect(await postmapQuery(`enforce.${ZONE}`, tcpMap)).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });

  it.each<[string, string]>([
    ['testing policy: not enforced', `testing.${ZONE}`],
    ['mode none', `none.${ZONE}`],
    ['no policy published', `plain.${ZONE}`],
    ['policy host with an expired certificate and nothing cached', `badcert.${ZONE}`],
    ['parent-domain probe (leading dot)', `.enforce.${ZONE}`],
    ['explicit next hop [host]:port', `[mx1.enforce.${ZONE}]:25`],
    ['address literal', '[192.0.2.1]'],
    ['single-label name', 'localhost'],
    // Keys that cannot carry a policy are not found, never a table error that defers mail (issue 13).
    ['relayhost [name] with an underscore', '[smtp_relay.corp]'],
    ['relayhost [name]:port with an underscore', '[relay_1.example.com]:587'],
    ['a next hop with an underscore', 'relay_1.example.com'],
    ['an address as an absolute name', '192.0.2.1.'],
    ['a key that is no host name at all', 'bad_key!.example'],
    ['a name longer than 253 octets', `${'abcdefgh.'.repeat(29)}example`],
  ])('%s: not found, Postfix applies its default TLS level', async (_rule, key) => {
    expect(await postmapQuery(key, tcpMap)).toMatchObject({ code: 1, stdout: '', stderr: '' });
  });

  it('keys are case-insensitive and a trailing dot is ignored', async () => {
    expect(await postmapQuery(`ENFORCE.Mail.Test.`, tcpMap)).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });

  it('a strict_testing zone enforces testing policies', async () => {
    const r = await postmapQuery(`testing.${ZONE}`, map('strict'));
    expect(r).toMatchObject({ code: 0, stdout: 'secure match=mx.testing.mail.test servername=hostname\n' });
  });

  it('an unknown map name uses the default zone', async () => {
    expect(await postmapQuery(`testing.${ZONE}`, map('whatever'))).toMatchObject({ code: 1 });
  });

  it('a tlsrpt zone appends the Postfix 3.10 attributes', async () => {
    const r = await postmapQuery(`enforce.${ZONE}`, map('reporting'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${SECURE} policy_type=sts policy_domain=enforce.${ZONE} `);
    expect(r.stdout).toContain('mx_host_pattern=mx1.enforce.mail.test mx_host_pattern=*.relay.mail.test');
    expect(r.stdout).toContain('{ policy_string = mode: enforce }');
  });

  it('the unix socket listener answers the same', async () => {
    const r = await postmapQuery(`enforce.${ZONE}`, `socketmap:unix:${join(sidecar.dir, 'socketmap.sock')}:postfix`);
    expect(r).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });

  it('many keys over one connection (postmap -q -)', async () => {
    const keys = ['enforce', 'testing', 'plain', 'none', 'enforce'].map((l) => `${l}.${ZONE}`);
    const r = await postmapQuery('-', tcpMap, keys.join('\n') + '\n');
    // postmap -q - prints `key<TAB>value` for each key found, nothing for the others.
    expect(r.stdout).toBe(`enforce.${ZONE}\t${SECURE}\n`.repeat(2));
  });

  it('a tlsrpt zone leaves out a policy line Postfix could not parse back ("{"), and keeps the rest', async () => {
    const r = await postmapQuery(`braces.${ZONE}`, map('reporting'));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const read = readPostfixPolicy(r.stdout.trimEnd());
    expect(read).not.toHaveProperty('error');
    if ('error' in read) return;
    expect(read.attributes.filter(([n]) => n === 'policy_string').map(([, v]) => v)).toEqual([
      'version: STSv1', 'mode: enforce', 'mx: mx.braces.mail.test', 'max_age: 86400',
    ]);
    expect(r.stdout).not.toContain('{docs');
  });

  it('a policy too big for TLSRPT attributes: Postfix gets the whole enforce directive, within socketmap_max_reply', async () => {
    const want = `secure match=${BIG_MX.join(':')} servername=hostname\n`;
    expect(Buffer.byteLength(want)).toBeGreaterThan(50_000);
    // Compared whole, reported short: a failure must not print 60 KB twice.
    const got = async (m: string) => {
      const r = await postmapQuery(`big.${ZONE}`, m);
      return { code: r.code, stderr: r.stderr, head: r.stdout.slice(0, 80), whole: r.stdout === want };
    };
    const expected = { code: 0, stderr: '', head: want.slice(0, 80), whole: true };
    expect(await got(map('reporting'))).toEqual(expected);
    expect(await got(tcpMap)).toEqual(expected);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ level: 30, domain: `big.${ZONE}`, shortened: 'tlsrpt-dropped', limit: 100_000 }),
    );
  });

  it('socketmap.max_reply_bytes below the mx list: parent domains, still verified TLS, and a warning', async () => {
    await sidecar.writeConfig(config(port, '  max_reply_bytes: 1024'));
    sidecar.process.kill('SIGHUP');
    const want = `secure match=.big.mail.test servername=hostname\n`;
    // Bounded: the reload is applied within seconds, and every answer before it is the whole list.
    let r = await postmapQuery(`big.${ZONE}`, tcpMap);
    for (let i = 0; i < 50 && r.stdout !== want; i++) {
      await new Promise((done) => setTimeout(done, 200));
      r = await postmapQuery(`big.${ZONE}`, tcpMap);
    }
    expect({ ...r, stdout: r.stdout.slice(0, 200) }).toEqual({ code: 0, stdout: want, stderr: '' });
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 40, domain: `big.${ZONE}`, shortened: 'match-widened', limit: 1024 }));
    // Other domains are as before.
    expect(await postmapQuery(`enforce.${ZONE}`, tcpMap)).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });

  it('the cached answer survives the policy host going away', async () => {
    https.removeRoute(`mta-sts.enforce.${ZONE}`);
    expect(await postmapQuery(`enforce.${ZONE}`, tcpMap)).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });
});
