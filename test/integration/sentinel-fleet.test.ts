/**
 * Two built daemons sharing Redis through Sentinel (a primary, a replica, one Sentinel): what one learns
 * the other answers; when the primary stops, both keep answering, and once the Sentinel has promoted
 * the replica they write and share through it again, by themselves (issue 11: "Sentinel failover").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startBlackholeDns, startDnsServer, type BlackholeDns, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { startSentinelLab, type SentinelLab } from '../lab/redis-sentinel.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'sentinelfleet.test';
const LABELS = ['alpha', 'beta', 'gamma', 'delta'];
const secure = (l: string) => `OK secure match=mx.${l}.${ZONE} servername=hostname`;

let worldAddress: string;
let deadAddress: string;
let dns: DnsServer;
let blackhole: BlackholeDns;
let https: PolicyServer;
let sentinel: SentinelLab;
const daemons: Sidecar[] = [];

async function daemon(dnsAddress: string): Promise<SocketmapClient> {
  const port = await freePort();
  const sidecar = await startSidecar(
    `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
dns: { servers: ["${dnsAddress}"], timeout_ms: 500, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
resolver: { answer_deadline_ms: 1500 }
cache: { store: redis, redis_sentinels: ${JSON.stringify(sentinel.sentinels)}, redis_master_name: ${sentinel.masterName} }
log: { level: info }
`,
    { 'ca.pem': https.ca.certPem },
  );
  daemons.push(sidecar);
  return connectSocketmap({ port });
}

beforeAll(async () => {
  worldAddress = await allocateLoopback();
  deadAddress = await allocateLoopback();
  https = await startPolicyServer({ address: worldAddress });
  const records: DnsRecord[] = [];
  for (const l of LABELS) {
    records.push({ name: `_mta-sts.${l}`, type: 'TXT', value: [`v=STSv1; id=${l}`] });
    records.push({ name: `mta-sts.${l}`, type: 'A', value: worldAddress });
    https.setRoute(`mta-sts.${l}.${ZONE}`, { body: `version: STSv1\nmode: enforce\nmx: mx.${l}.${ZONE}\nmax_age: 86400\n` });
  }
  dns = await startDnsServer({ address: worldAddress, zones: { [ZONE]: { records } } });
  blackhole = await startBlackholeDns(deadAddress);
  sentinel = await startSentinelLab();
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.stop();
  await sentinel?.close();
  await dns?.stop();
  await blackhole?.stop();
  await https?.stop();
  for (const a of [worldAddress, deadAddress]) if (a) releaseLoopback(a);
});

describe('a fleet sharing Redis through Sentinel', () => {
  it('keeps answering while the primary is gone and writes through the promoted replica afterwards', async () => {
    const online = await daemon(worldAddress); // can reach the world
    const offline = await daemon(deadAddress); // sees only Redis

    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    await waitFor(async () => (await offline.query('postfix', `alpha.${ZONE}`)) === secure('alpha'), 'alpha via Redis');

    const oldPort = await sentinel.primaryPort();
    await sentinel.primary.stop();
    // During the failover: the hot tier answers what is known, new domains are resolved directly.
    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await offline.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await online.query('postfix', `beta.${ZONE}`)).toBe(secure('beta'));

    // After the promotion both daemons use the new primary by themselves: a policy learned by one is
    // written there and answered by the other, which has no DNS of its own.
    expect(await sentinel.waitForPromotion(oldPort, 30_000)).toBe(sentinel.replica.port);
    await waitFor(async () => daemons.every((d) => d.output().includes('redis cache reachable again')), 'reconnects', 30_000);
    expect(await online.query('postfix', `delta.${ZONE}`)).toBe(secure('delta'));
    await waitFor(async () => (await offline.query('postfix', `delta.${ZONE}`)) === secure('delta'), 'delta via the promoted replica');
    online.close();
    offline.close();

    for (const d of daemons) expect(d.output()).not.toMatch(/"level":(50|60)/); // no error or fatal lines
  }, 90_000);
});
