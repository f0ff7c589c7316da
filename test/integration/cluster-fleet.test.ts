/**
 * Two built daemons sharing a 3-node Redis Cluster: the policies spread over the nodes; when one node
 * stops, the documented fallback holds (issue 11: "cluster node loss"): keys on the other nodes are still
 * answered from the store, keys on the lost node miss and are resolved directly (NOTFOUND for a daemon
 * that cannot reach the world), and what a daemon already knows it keeps answering from memory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClusterLab, type ClusterLab } from '../lab/redis-cluster.js';
import { startFleetWorld, type FleetWorld, type Reach } from '../lab/fleet-world.js';
import type { SocketmapClient } from '../lab/socketmap-client.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'clusterfleet.test';
const LABELS = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];
const secure = (l: string) => world.secure(l);

let world: FleetWorld;
let cluster: ClusterLab;
const daemons = () => world.daemons;
const daemon = (reach: Reach): Promise<SocketmapClient> => world.daemon(reach, `{ store: redis, redis_cluster_nodes: ${JSON.stringify(cluster.addresses)} }`);

beforeAll(async () => {
  world = await startFleetWorld(ZONE, LABELS);
  cluster = await startClusterLab();
}, 60_000);

afterAll(async () => {
  await world?.close();
  await cluster?.close();
});

describe('a fleet sharing a Redis Cluster', () => {
  it("one node lost: the other nodes' policies are still shared, the lost node's are resolved directly", async () => {
    const online = await daemon('world'); // can reach the world
    for (const l of LABELS) expect(await online.query('postfix', `${l}.${ZONE}`)).toBe(secure(l));

    const nodeOf = new Map<string, number>();
    for (const l of LABELS) nodeOf.set(l, await cluster.nodeOf(`mta-sts-sidecar:policy:${l}.${ZONE}`));
    const lostNode = nodeOf.get('alpha')!;
    const onLost = LABELS.filter((l) => nodeOf.get(l) === lostNode);
    const elsewhere = LABELS.filter((l) => nodeOf.get(l) !== lostNode);
    expect(onLost.length).toBeGreaterThan(0);
    expect(elsewhere.length).toBeGreaterThan(0);

    await cluster.nodes[lostNode]!.stop();
    const offline = await daemon('dead'); // sees only the cluster, and has learned nothing yet
    for (const l of elsewhere) expect(await offline.query('postfix', `${l}.${ZONE}`), l).toBe(secure(l));
    for (const l of onLost) expect(await offline.query('postfix', `${l}.${ZONE}`), l).toBe('NOTFOUND ');
    // What the online daemon already knows stays in force from its memory tier.
    for (const l of LABELS) expect(await online.query('postfix', `${l}.${ZONE}`), l).toBe(secure(l));
    online.close();
    offline.close();

    for (const d of daemons()) expect(d.output()).not.toMatch(/"level":(50|60)/); // no error or fatal lines
  }, 90_000);
});
