/**
 * Two built daemons sharing one real PostgreSQL (cache.store: postgres, the password from
 * cache.postgres_password_file), as a fleet of MTAs would: what one learns the other answers without its
 * own network; a database outage degrades to the hot tier plus direct resolution, never to errors; both
 * reconnect by themselves and say so once.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresLab } from '../lab/postgres.js';
import { startFleetWorld, type FleetWorld, type Reach } from '../lab/fleet-world.js';
import type { SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'pgfleet.test';
const LABELS = ['alpha', 'beta', 'gamma', 'delta'];
const secure = (l: string) => world.secure(l);

let world: FleetWorld;
let pg: PostgresLab;
const daemons = () => world.daemons;
const daemon = (reach: Reach): Promise<SocketmapClient> => world.daemon(reach, `{ store: postgres, postgres_url: "${pg.url}", postgres_password_file: "$DIR/pg-password" }`, { 'pg-password': readFileSync(pg.passwordFile, 'utf8') });

beforeAll(async () => {
  world = await startFleetWorld(ZONE, LABELS);
  pg = await startPostgres();
}, 60_000);

afterAll(async () => {
  await world?.close();
  await pg?.close();
});

describe('a fleet sharing PostgreSQL', () => {
  it('learns once, answers everywhere, and rides out a database outage', async () => {
    const online = await daemon('world'); // can reach the world
    const offline = await daemon('dead'); // sees only the database

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
    await waitFor(async () => daemons().every((d) => d.output().includes('postgres cache reachable again')), 'reconnects');
    online.close();
    offline.close();

    for (const d of daemons()) {
      expect(d.output()).not.toMatch(/"level":(50|60)/); // no error or fatal lines
      // The outage is said once per daemon, not per lookup.
      expect(d.output().match(/postgres cache unreachable/g) ?? []).toHaveLength(1);
    }
  }, 90_000);
});
