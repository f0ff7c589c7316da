/**
 * Hostile policy hosts against the built daemon:
 * - SSRF: by default a policy host that resolves to loopback (A, IPv4-mapped AAAA, ::1) is refused before
 *   any connection, with `fetch.allow_private_addresses` as the explicit opt-in (every other address
 *   class is table-tested in test/unit/address-filter.test.ts; a DNS change between two fetches is
 *   test/faults/rebinding-netns.test.ts, which needs root for a network namespace of its own);
 * - a host cannot hold our connection past the fetch timeout, nor make us fetch more often than
 *   resolver.min_fetch_interval_ms (max_age 0), nor make us run more fetches at once than
 *   resolver.max_concurrent_fetches; one slow host gets one fetch (single-flight) and does not starve
 *   other domains.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSocketmap } from '../lab/socketmap-client.js';
import { WARN, ZONE, eventually, hammer, policy, secure, startDaemon, startWorld, type Daemon, type World } from './world.js';

const SLOW = ['slow0', 'slow1', 'slow2', 'slow3', 'slow4', 'slow5'];
const LABELS = ['fast', 'hang', 'zero', 'single', ...SLOW];
let world: World;

beforeAll(async () => {
  world = await startWorld(LABELS, (address) => [
    // Policy hosts in address space a hostile domain might point us at.
    { name: '_mta-sts.loop', type: 'TXT', value: ['v=STSv1; id=1'] },
    { name: 'mta-sts.loop', type: 'A', value: address },
    { name: '_mta-sts.mapped', type: 'TXT', value: ['v=STSv1; id=1'] },
    { name: 'mta-sts.mapped', type: 'AAAA', value: `::ffff:${address}` },
    { name: '_mta-sts.six', type: 'TXT', value: ['v=STSv1; id=1'] },
    { name: 'mta-sts.six', type: 'AAAA', value: '::1' },
  ]);
  for (const l of ['loop', 'mapped', 'six']) world.https.setRoute(`mta-sts.${l}.${ZONE}`, { body: policy(l) });
  world.https.setRoute(`mta-sts.hang.${ZONE}`, { body: policy('hang'), slowBody: { bytes: 1, intervalMs: 200 } });
  world.https.setRoute(`mta-sts.zero.${ZONE}`, { body: policy('zero').replace('max_age: 86400', 'max_age: 0') });
  world.https.setRoute(`mta-sts.single.${ZONE}`, { body: policy('single'), delayMs: 600 });
  // Slow, but inside the 800 ms fetch timeout: each holds a fetch slot for 600 ms and then succeeds.
  for (const l of SLOW) world.https.setRoute(`mta-sts.${l}.${ZONE}`, { body: policy(l), delayMs: 600 });
}, 60_000);

let shared: Daemon | undefined;
/** One daemon with the opt-in (and fetch pacing at its 60 s default) for the tests that need no other setting. */
async function optIn(): Promise<Daemon> {
  shared ??= await startDaemon(world, { allowPrivate: true, yaml: 'cache: { store: memory }', resolver: { min_fetch_interval_ms: 60_000 } });
  return shared;
}

afterAll(async () => {
  await shared?.stop();
  await world?.close();
});

describe('SSRF: policy hosts on non-public addresses', () => {
  it('are refused by default, before any connection, and logged with reason "address"', async () => {
    const daemon = await startDaemon(world, { allowPrivate: false, yaml: 'cache: { store: memory }' });
    try {
      for (const l of ['loop', 'mapped', 'six']) {
        expect(await daemon.client.query('postfix', `${l}.${ZONE}`)).toBe('NOTFOUND ');
        expect(world.https.requests(`mta-sts.${l}.${ZONE}`)).toBe(0);
      }
      const refusals = () => daemon.logs().filter((x) => x.level === WARN && x.msg === 'policy discovery failed');
      await eventually(() => refusals().length >= 3, 'three refusals logged'); // stdout is a pipe: lines may lag
      const refused = refusals();
      expect(refused.map((x) => [x.domain, x.reason]).sort()).toEqual([
        [`loop.${ZONE}`, 'address'],
        [`mapped.${ZONE}`, 'address'],
        [`six.${ZONE}`, 'address'],
      ]);
    } finally {
      await daemon.stop();
    }
  });

  it('are fetched with fetch.allow_private_addresses: true (the explicit opt-in)', async () => {
    const daemon = await optIn();
    expect(await daemon.client.query('postfix', `loop.${ZONE}`)).toBe(secure('loop'));
    expect(await daemon.client.query('postfix', `mapped.${ZONE}`)).toBe(secure('mapped'));
  });
});

describe('fetch limits a policy host cannot lift', () => {
  it('a host trickling its body does not hold our connection past fetch.timeout_ms', async () => {
    const daemon = await optIn();
    {
      expect(await daemon.client.query('postfix', `hang.${ZONE}`)).toBe('NOTFOUND ');
      const open = () => established(daemon.sidecar.process.pid!, `${world.address}:443`);
      // The fetch gives up at fetch.timeout_ms; the socket is gone right after (bounded wait, no timing assertion).
      await eventually(() => open() === 0, 'the connection to the trickling host to be closed', 5_000);
      await eventually(() => daemon.logs().some((x) => x.domain === `hang.${ZONE}` && x.level === WARN), 'the failure to be logged');
      expect(daemon.logs().find((x) => x.domain === `hang.${ZONE}` && x.level === WARN)?.reason).toBe('timeout');
      expect(world.https.requests(`mta-sts.hang.${ZONE}`)).toBe(1);
      expect(open()).toBe(0);
    }
  });

  it('max_age 0 does not buy a fetch per lookup: one fetch per min_fetch_interval_ms, answers NOTFOUND', async () => {
    const daemon = await optIn();
    {
      const seen = await hammer(daemon.client, [`zero.${ZONE}`], 1_500);
      expect(world.https.requests(`mta-sts.zero.${ZONE}`)).toBe(1);
      // The lookup that fetched it may use it; every later one is NOTFOUND (never the expired policy).
      const answers = seen.get(`zero.${ZONE}`)!;
      expect(answers.get(secure('zero')) ?? 0).toBeLessThanOrEqual(1);
      expect(answers.get('NOTFOUND ')).toBeGreaterThan(10);
      expect([...answers.keys()].every((a) => a === 'NOTFOUND ' || a === secure('zero'))).toBe(true);
    }
  });

  it('fetches at once are bounded by max_concurrent_fetches; a slow host gets one fetch and does not starve others', async () => {
    const limited = await startDaemon(world, {
      yaml: 'cache: { store: memory }',
      // A generous fetch timeout: this test is about slots, not timeouts (TLS to a fresh lab host is slow).
      fetchTimeoutMs: 5_000,
      resolver: { max_concurrent_fetches: 2, answer_deadline_ms: 500, refetch_at_fraction: 0.5 },
    });
    try {
      const clients = await Promise.all(Array.from({ length: 8 }, () => connectSocketmap({ port: limited.port })));
      // Eight lookups of one slow domain at once, and the six slow domains, all concurrently.
      const single = Promise.all(clients.map((c) => c.query('postfix', `single.${ZONE}`)));
      const slow = Promise.all(SLOW.map((l, i) => clients[i % clients.length]!.query('postfix', `${l}.${ZONE}`)));
      await Promise.all([single, slow]);
      // Every slow domain is learned in the background (queued for a slot, not dropped), each with one fetch.
      await eventually(async () => {
        for (const l of SLOW) if ((await clients[0]!.query('postfix', `${l}.${ZONE}`)) !== secure(l)) return false;
        return true;
      }, 'every slow domain to be learned', 15_000);
      expect(SLOW.map((l) => world.https.requests(`mta-sts.${l}.${ZONE}`))).toEqual(SLOW.map(() => 1));
      expect(world.https.requests(`mta-sts.single.${ZONE}`)).toBe(1); // single-flight: one fetch for eight lookups
      // Never more than two requests in flight at once (each is held 600 ms by the host).
      expect(maxOverlap([...SLOW, 'single'].flatMap((l) => world.https.requestLog(`mta-sts.${l}.${ZONE}`).map((r) => r.at)), 600)).toBeLessThanOrEqual(2);
      // Meanwhile, and now, a fast domain is answered correctly.
      expect(await clients[0]!.query('postfix', `fast.${ZONE}`)).toBe(secure('fast'));
      for (const c of clients) c.close();
    } finally {
      await limited.stop();
    }
  });
});

/** Most requests in flight at once, each lasting `ms` from its arrival. */
function maxOverlap(arrivals: number[], ms: number): number {
  const sorted = [...arrivals].sort((a, b) => a - b);
  let best = 0;
  for (const [i, t] of sorted.entries()) best = Math.max(best, sorted.slice(i).filter((u) => u < t + ms - 50).length);
  return best;
}

/** Established TCP connections of process `pid` to `peer` (`ss -tnp`). */
function established(pid: number, peer: string): number {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', 'dst', peer], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
}

