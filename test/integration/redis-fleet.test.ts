/**
 * Two daemons sharing one real redis-server, as a fleet of MTAs would: what one learns the other
 * answers without its own network; a Redis outage degrades to the hot tier plus direct resolution,
 * never to errors; both reconnect by themselves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis, type RedisLab } from '../lab/redis.js';
import { startFleetWorld, type FleetWorld, type Reach } from '../lab/fleet-world.js';
import type { SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'fleet.test';
const LABELS = ['alpha', 'beta', 'gamma', 'delta'];
const secure = (l: string) => world.secure(l);

let world: FleetWorld;
let redis: RedisLab;
let dir: string;
const daemons = () => world.daemons;
const daemon = (reach: Reach): Promise<SocketmapClient> => world.daemon(reach, `{ store: redis, redis_url: "${redis.url}" }`);

beforeAll(async () => {
  world = await startFleetWorld(ZONE, LABELS);
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'fleet-'));
}, 60_000);

afterAll(async () => {
  await world?.close();
  await redis?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a fleet sharing Redis', () => {
  it('learns once, answers everywhere, and rides out a Redis outage', async () => {
    const online = await daemon('world'); // can reach the world
    const offline = await daemon('dead'); // sees only Redis

    // What the online daemon learns, the offline one answers from Redis.
    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    await waitFor(async () => (await offline.query('postfix', `alpha.${ZONE}`)) === secure('alpha'), 'alpha via Redis');

    // Redis goes away: answers continue from the hot tier, new domains are resolved directly.
    await redis.stop();
    expect(await online.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await offline.query('postfix', `alpha.${ZONE}`)).toBe(secure('alpha'));
    expect(await online.query('postfix', `beta.${ZONE}`)).toBe(secure('beta'));
    // The offline daemon has neither Redis nor DNS for gamma: NOTFOUND, not an error reply.
    expect(await offline.query('postfix', `gamma.${ZONE}`)).toBe('NOTFOUND ');

    // Redis comes back (empty): both reconnect by themselves (and say so) and share again.
    await redis.restart();
    await waitFor(async () => daemons().every((d) => d.output().includes('redis cache reachable again')), 'reconnects');
    expect(await online.query('postfix', `delta.${ZONE}`)).toBe(secure('delta'));
    await waitFor(async () => (await offline.query('postfix', `delta.${ZONE}`)) === secure('delta'), 'delta via Redis again');
    online.close();
    offline.close();

    for (const d of daemons()) {
      expect(d.output()).not.toMatch(/"level":(50|60)/); // no error or fatal lines
    }
  }, 60_000);
});
