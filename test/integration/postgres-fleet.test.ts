/**
 * Two built daemons sharing one real PostgreSQL (cache.store: postgres, the password from
 * cache.postgres_password_file), as a fleet of MTAs would: what one learns the other answers without its
 * own network; a database outage degrades to the hot tier plus direct resolution, never to errors; both
 * reconnect by themselves and say so once.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startBlackholeDns, startDnsServer, type BlackholeDns, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { startPostgres, type PostgresLab } from '../lab/postgres.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'pgfleet.test';
const LABELS = ['alpha', 'beta', 'gamma', 'delta'];
const secure = (l: string) => `OK secure match=mx.${l}.${ZONE} servername=hostname`;

let worldAddress: string;
let deadAddress: string;
let dns: DnsServer;
let blackhole: BlackholeDns;
let https: PolicyServer;
let pg: PostgresLab;
const daemons: Sidecar[] = [];

async function daemon(dnsAddress: string): Promise<SocketmapClient> {
  const port = await freePort();
  const sidecar = await startSidecar(
    `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
dns: { servers: ["${dnsAddress}"], timeout_ms: 500, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
resolver: { answer_deadline_ms: 1500 }
cache: { store: postgres, postgres_url: "${pg.url}", postgres_password_file: "$DIR/pg-password" }
log: { level: info }
`,
    { 'ca.pem': https.ca.certPem, 'pg-password': readFileSync(pg.passwordFile, 'utf8') },
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
  pg = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.stop();
  await pg?.close();
  await dns?.stop();
  await blackhole?.stop();
  await https?.stop();
  for (const a of [worldAddress, deadAddress]) if (a) releaseLoopback(a);
});

describe('a fleet sharing PostgreSQL', () => {
  it('learns once, answers everywhere, and rides out a database outage', async () => {
    const online = await daemon(worldAddress); // can reach the world
    const offline = await daemon(deadAddress); // sees only the database

    // What the online daemon learns, the offline one answers from PostgreSQL.
    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    await waitFor(async () => (await offline.query('postfix', `alpha.${ZONE}`)) === secure('alpha'), 'alpha via PostgreSQL');

    // The database goes away: answers continue from the hot tier, new domains are resolved directly.
    await pg.stop();
    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await offline.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await online.query('postfix', `beta.${ZONE}`)).toBe(secure('beta'));
    // The offline daemon has neither the database nor DNS for gamma: NOTFOUND, not an error reply.
    expect(await offline.query('postfix', `gamma.${ZONE}`)).toBe('NOTFOUND ');

    // The database comes back (with its data): both reconnect by themselves and share again.
    await pg.restart();
    expect(await online.query('postfix', `delta.${ZONE}`)).toBe(secure('delta'));
    await waitFor(async () => (await offline.query('postfix', `delta.${ZONE}`)) === secure('delta'), 'delta via PostgreSQL again');
    await waitFor(async () => daemons.every((d) => d.output().includes('postgres cache reachable again')), 'reconnects');
    online.close();
    offline.close();

    for (const d of daemons) {
      expect(d.output()).not.toMatch(/"level":(50|60)/); // no error or fatal lines
      // The outage is said once per daemon, not per lookup.
      expect(d.output().match(/postgres cache unreachable/g) ?? []).toHaveLength(1);
    }
  }, 90_000);
});
