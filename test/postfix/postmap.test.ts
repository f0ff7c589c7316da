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

const ZONE = 'mail.test';
const policy = (mode: string, ...mx: string[]) =>
  `version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: 86400\n`;

// label -> policy body (null: no TXT record published)
const DOMAINS: Record<string, string | null> = {
  enforce: policy('enforce', 'mx1.enforce.mail.test', '*.relay.mail.test'),
  testing: policy('testing', 'mx.testing.mail.test'),
  none: policy('none'),
  plain: null,
};

let address: string;
let dns: DnsServer;
let https: PolicyServer;
let sidecar: Sidecar;
let tcpMap: string;
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

  const port = await freePort();
  tcpMap = `socketmap:inet:127.0.0.1:${port}:postfix`;
  sidecar = await startSidecar(`
socketmap:
  listen: ["tcp:127.0.0.1:${port}", "unix:$DIR/socketmap.sock"]
dns: { servers: ["${address}"], timeout_ms: 2000, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
cache: { store: sqlite, path: "$DIR/cache.db" }
zones:
  strict: { strict_testing: true }
  reporting: { tlsrpt: true }
log: { level: info }
`, { 'ca.pem': https.ca.certPem });
}, 60_000);

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
  ])('%s: not found, Postfix applies its default TLS level', async (_rule, key) => {
    expect(await postmapQuery(key, tcpMap)).toMatchObject({ code: 1, stdout: '' });
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

  it('an invalid key gets PERM: postmap reports a lookup error and the daemon carries on', async () => {
    const bad = await postmapQuery('bad_key!.example', tcpMap);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/invalid domain key/);
    expect(await postmapQuery(`enforce.${ZONE}`, tcpMap)).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });

  it('the cached answer survives the policy host going away', async () => {
    https.removeRoute(`mta-sts.enforce.${ZONE}`);
    expect(await postmapQuery(`enforce.${ZONE}`, tcpMap)).toMatchObject({ code: 0, stdout: `${SECURE}\n` });
  });
});
