/**
 * Two built daemons sharing Redis through Sentinel (a primary, a replica, one Sentinel): what one learns
 * the other answers; when the primary stops, both keep answering, and once the Sentinel has promoted
 * the replica they write and share through it again, by themselves (issue 11: "Sentinel failover").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSentinelLab, type SentinelLab } from '../lab/redis-sentinel.js';
import { startFleetWorld, type FleetWorld, type Reach } from '../lab/fleet-world.js';
import type { SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'sentinelfleet.test';
const LABELS = ['alpha', 'beta', 'gamma', 'delta'];
const secure = (l: string) => world.secure(l);

let world: FleetWorld;
let sentinel: SentinelLab;
const daemons = () => world.daemons;
const daemon = (reach: Reach): Promise<SocketmapClient> => world.daemon(reach, `{ store: redis, redis_sentinels: ${JSON.stringify(sentinel.sentinels)}, redis_master_name: ${sentinel.masterName} }`);

beforeAll(async () => {
  world = await startFleetWorld(ZONE, LABELS);
  sentinel = await startSentinelLab();
}, 60_000);

afterAll(async () => {
  await world?.close();
  await sentinel?.close();
});

describe('a fleet sharing Redis through Sentinel', () => {
  it('keeps answering while the primary is gone and writes through the promoted replica afterwards', async () => {
    const online = await daemon('world'); // can reach the world
    const offline = await daemon('dead'); // sees only Redis

    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    await waitFor(async () => (await offline.query('postfix', `alpha.${ZONE}`)) === secure('alpha'), 'alpha via Redis');

    const oldPort = await sentinel.primaryPort();
    await sentinel.primary.stop();
    // During the failover: the hot tier answers what is known, new domains are resolved directly.
    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await offline.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await online.query('postfix', `beta.${ZONE}`)).toBe(secure('beta'));

    // After the promotion both daemons() use the new primary by themselves: a policy learned by one is
    // written there and answered by the other, which has no DNS of its own.
    expect(await sentinel.waitForPromotion(oldPort, 30_000)).toBe(sentinel.replica.port);
    await waitFor(async () => daemons().every((d) => d.output().includes('redis cache reachable again')), 'reconnects', 30_000);
    expect(await online.query('postfix', `delta.${ZONE}`)).toBe(secure('delta'));
    await waitFor(async () => (await offline.query('postfix', `delta.${ZONE}`)) === secure('delta'), 'delta via the promoted replica');
    online.close();
    offline.close();

    for (const d of daemons()) expect(d.output()).not.toMatch(/"level":(50|60)/); // no error or fatal lines
  }, 90_000);
});
