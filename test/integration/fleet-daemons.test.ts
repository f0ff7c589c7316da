/**
 * Issue 11, "one fetch per domain for the whole fleet", with the built daemon: five daemons on one real
 * redis-server, NSD for DNS and the lab HTTPS server as every policy host (it counts requests per host).
 * - 200 new domains asked on all five at once: each policy host sees exactly one fetch.
 * - The lease holder is killed (SIGKILL) in the middle of a slow fetch: the others still answer, with the
 *   policy, within the answer deadline (they wait half of it, then fetch themselves).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyAndCert } from '../lab/ca.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { startRedis, type RedisLab } from '../lab/redis.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'fleet5.test';
const DAEMONS = 5;
const DOMAINS = 200;
/** Socketmap connections per daemon (each asks its share of the domains one after the other). */
const CONNECTIONS = 20;
const DEADLINE_MS = 20_000;
const FETCH_TIMEOUT_MS = 15_000;
const SLOW = `slow.${ZONE}`;

const policy = (d: string) => `version: STSv1\nmode: enforce\nmx: mx.${d}\nmax_age: 86400\n`;
const secure = (d: string) => `OK secure match=mx.${d} servername=hostname`;
const domains = Array.from({ length: DOMAINS }, (_, i) => `d${i}.${ZONE}`);

let address: string;
let dns: DnsServer;
let https: PolicyServer;
let redis: RedisLab;
let cert: KeyAndCert;
const daemons: Array<{ sidecar: Sidecar; port: number }> = [];

beforeAll(async () => {
  address = await allocateLoopback();
  https = await startPolicyServer({ address });
  // One certificate naming every policy host: the lab would otherwise make a key per host on first use,
  // CPU in this process that the test would measure instead of the fleet.
  cert = await https.ca.issue({ dnsNames: [...domains, SLOW].map((d) => `mta-sts.${d}`) });
  const records: DnsRecord[] = [];
  for (const d of [...domains, SLOW]) {
    const label = d.slice(0, -ZONE.length - 1);
    records.push({ name: `_mta-sts.${label}`, type: 'TXT', value: ['v=STSv1; id=1'] });
    records.push({ name: `mta-sts.${label}`, type: 'A', value: address });
    https.setRoute(`mta-sts.${d}`, { body: policy(d), cert });
  }
  dns = await startDnsServer({ address, zones: { [ZONE]: { records } } });
  redis = await startRedis();
  const ca = https.ca.certPem;
  // One after the other: five node processes starting at once on two busy cores can miss the lab's
  // readiness timeout.
  for (let i = 0; i < DAEMONS; i++) {
    const port = await freePort();
    const sidecar = await startSidecar(
      `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
dns: { servers: ["${address}"], timeout_ms: 1000, tries: 2 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: ${FETCH_TIMEOUT_MS} }
resolver: { answer_deadline_ms: ${DEADLINE_MS} }
cache: { store: redis, redis_url: "${redis.url}" }
log: { level: info }
`,
      { 'ca.pem': ca },
    );
    daemons.push({ sidecar, port });
  }
}, 90_000);

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.sidecar.stop()));
  await redis?.close();
  await dns?.stop();
  await https?.stop();
  if (address) releaseLoopback(address);
});

/** Ask `keys` on one daemon over `connections` socketmap connections; the replies by key. */
async function askAll(port: number, keys: string[], connections: number): Promise<Map<string, string>> {
  const clients: SocketmapClient[] = await Promise.all(Array.from({ length: connections }, () => connectSocketmap({ port })));
  const replies = new Map<string, string>();
  try {
    await Promise.all(
      clients.map(async (client, c) => {
        for (let i = c; i < keys.length; i += connections) replies.set(keys[i]!, await client.query('postfix', keys[i]!));
      }),
    );
  } finally {
    for (const client of clients) client.close();
  }
  return replies;
}

describe('five daemons on one Redis store', () => {
  it('200 new domains asked on all of them at once: each policy host sees one fetch', async () => {
    const replies = await Promise.all(daemons.map((d) => askAll(d.port, domains, CONNECTIONS)));
    const fetched = domains.map((d) => https.requests(`mta-sts.${d}`));
    const twice = domains.filter((_, i) => fetched[i] !== 1);
    if (twice.length > 0) for (const d of daemons) console.log(d.sidecar.output().split('\n').filter((l) => /"level":(40|50)|fleet lease/.test(l) && !/dnssec|root/.test(l)).slice(0, 8).join('\n'));
    expect(twice.map((d) => `${d}=${https.requests(`mta-sts.${d}`)}`)).toEqual([]);
    for (const r of replies) for (const d of domains) expect(r.get(d)).toBe(secure(d));
  }, 90_000);

  it('the lease holder killed mid-fetch: the others answer within the deadline', async () => {
    // The policy host answers slowly (longer than the deadline) until the holder's request has arrived.
    https.setRoute(`mta-sts.${SLOW}`, { body: policy(SLOW), cert, delayMs: 30_000 });
    const [holder, ...others] = daemons;
    const holderClient = await connectSocketmap({ port: holder!.port });
    void holderClient.query('postfix', SLOW).catch(() => {});
    await waitFor(() => https.requests(`mta-sts.${SLOW}`) === 1, 'the holder to be fetching');
    https.setRoute(`mta-sts.${SLOW}`, { body: policy(SLOW), cert });

    const asked = Date.now();
    const answers = Promise.all(
      others.map(async (d) => {
        const client = await connectSocketmap({ port: d.port });
        try {
          return { reply: await client.query('postfix', SLOW), after: Date.now() - asked };
        } finally {
          client.close();
        }
      }),
    );
    // They are waiting on the holder's lease now; the holder dies without giving it back.
    await new Promise((r) => setTimeout(r, 200));
    holder!.sidecar.process.kill('SIGKILL');
    holderClient.close();
    for (const { reply, after } of await answers) {
      expect(reply).toBe(secure(SLOW));
      expect(after).toBeLessThan(DEADLINE_MS);
    }
  }, 90_000);
});
