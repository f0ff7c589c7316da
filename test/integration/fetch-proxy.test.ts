/**
 * `fetch.proxy` (issue 11) against a real CONNECT proxy (Debian's tinyproxy, test/lab/tinyproxy.ts).
 *
 * The arrangement proves the proxy was used: our DNS (NSD) sends the policy hosts to a loopback address
 * where nothing listens, while the proxy's own /etc/hosts sends them to the lab HTTPS server. A direct
 * fetch fails to connect; through the proxy it works, and the proxy's log shows the CONNECT. Inside the
 * tunnel every rule of the direct fetch still holds (RFC 8461 §3.3: certificate, no redirects, size, time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsClient } from '../../src/net/dns.js';
import { createPolicyFetcher, type PolicyFetcher, type PolicyFetchOptions } from '../../src/net/policy-fetch.js';
import { StsError } from '../../src/errors.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { startTinyproxy, type TinyproxyLab } from '../lab/tinyproxy.js';

const ZONE = 'proxy.test';
const MAX_BYTES = 2048;
const TIMEOUT_MS = 1500;
const POLICY = `version: STSv1\nmode: enforce\nmx: mx.${ZONE}\nmax_age: 86400\n`;

/** label -> the lab server's route for mta-sts.<label>.proxy.test */
const ROUTES = {
  good: { body: POLICY },
  'bad-cert': { body: POLICY, cert: 'other-ca' as const },
  'wrong-name': { body: POLICY, cert: 'wrong-name' as const },
  redirect: { redirect: `https://mta-sts.good.${ZONE}/.well-known/mta-sts.txt` },
  big: { body: POLICY + '#'.repeat(MAX_BYTES) },
  slow: { body: POLICY, delayMs: TIMEOUT_MS * 3 },
};
const host = (label: string) => `mta-sts.${label}.${ZONE}`;

let serverAddress: string;
let deadAddress: string;
let dns: DnsServer;
let https: PolicyServer;
let proxy: TinyproxyLab;
const fetchers: PolicyFetcher[] = [];

beforeAll(async () => {
  serverAddress = await allocateLoopback();
  deadAddress = await allocateLoopback();
  https = await startPolicyServer({ address: serverAddress });
  for (const [label, route] of Object.entries(ROUTES)) https.setRoute(host(label), route);
  https.setRoute(host('direct'), { body: POLICY });
  // Our DNS: every policy host at the dead address, except `direct`, which is reachable without a proxy.
  const records = Object.keys(ROUTES).map((label) => ({ name: `mta-sts.${label}`, type: 'A', value: deadAddress }));
  records.push({ name: 'mta-sts.direct', type: 'A', value: serverAddress });
  dns = await startDnsServer({ address: serverAddress, zones: { [ZONE]: { records } } });
  // The proxy's view: the policy hosts at the lab server.
  proxy = await startTinyproxy(Object.fromEntries(Object.keys(ROUTES).map((label) => [host(label), serverAddress])));
}, 60_000);

afterAll(async () => {
  for (const f of fetchers) await f.close();
  await proxy?.stop();
  await dns?.stop();
  await https?.stop();
  for (const a of [serverAddress, deadAddress]) if (a) releaseLoopback(a);
});

function fetcher(overrides: Partial<PolicyFetchOptions> = {}): PolicyFetcher {
  const client = createDnsClient({ servers: [serverAddress], timeoutMs: 1000, tries: 1 });
  const f = createPolicyFetcher(client, {
    extraCaPem: https.ca.certPem,
    // The lab lives on loopback; the address rule before the proxy has its own case below.
    allowPrivateAddresses: true,
    timeoutMs: TIMEOUT_MS,
    maxBytes: MAX_BYTES,
    userAgent: 'proxy-test',
    proxy: { url: proxy.url, noProxy: [] },
    ...overrides,
  });
  fetchers.push(f);
  return f;
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StsError) return err.reason;
    throw err;
  }
  return 'ok';
}

describe('policy fetches through a CONNECT proxy (tinyproxy)', () => {
  it('works only through the proxy: direct, our DNS leads nowhere; through it, the policy arrives and the proxy logged the CONNECT', async () => {
    expect(await reason(fetcher({ proxy: null }).fetch(`good.${ZONE}`))).toBe('connect');
    const before = proxy.connects().length;
    const { text } = await fetcher().fetch(`good.${ZONE}`);
    expect(text).toBe(POLICY);
    expect(proxy.connects().slice(before)).toEqual([`${host('good')}:443`]);
    // The TLS session ran end to end: the lab server saw our SNI for the policy host.
    expect(https.requestLog(host('good')).at(-1)).toMatchObject({ sni: host('good'), path: '/.well-known/mta-sts.txt' });
  });

  // RFC 8461 §3.3 inside the tunnel: the same table as the direct fetch, one line per rule.
  it.each([
    ['bad-cert', 'tls', 'a certificate from an untrusted CA is refused'],
    ['wrong-name', 'tls', 'a certificate for another name is refused (SNI and identity unchanged)'],
    ['redirect', 'http-status', 'a redirect is not followed'],
    ['big', 'size', 'a body over fetch.max_bytes is cut off'],
    ['slow', 'timeout', 'fetch.timeout_ms holds'],
  ])('%s -> %s: %s', async (label, expected) => {
    expect(await reason(fetcher().fetch(`${label}.${ZONE}`))).toBe(expected);
  });

  it('a policy host our DNS puts at a non-public address is not sent through the proxy (reason address)', async () => {
    // Our DNS says loopback for `direct`: with the address filter on, the proxy never hears of it.
    expect(await reason(fetcher({ allowPrivateAddresses: false }).fetch(`direct.${ZONE}`))).toBe('address');
    expect(proxy.connects()).not.toContain(`${host('direct')}:443`);
  });

  it('a NO_PROXY host goes direct, past the proxy', async () => {
    const { text } = await fetcher({ proxy: { url: proxy.url, noProxy: [`direct.${ZONE}`] } }).fetch(`direct.${ZONE}`);
    expect(text).toBe(POLICY);
    expect(proxy.connects()).not.toContain(`${host('direct')}:443`);
  });
});
