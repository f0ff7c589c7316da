/**
 * Fault injection against the built daemon: DNS down, slow, SERVFAIL, truncated, silent; policy host
 * refusing, resetting mid-body, sending forever, presenting expired / wrong-name / self-signed
 * certificates, redirecting, serving garbage. For each fault, while queries flow:
 * - a domain with a cached policy keeps its exact answer (RFC 8461 §5.1), and nothing from the broken
 *   exchange ever reaches an answer (the broken host serves a valid-looking policy for an attacker's MX);
 * - a domain with nothing cached gets `NOTFOUND `;
 * - the cause is logged once per domain (warn, with its reason class), not per attempt or query;
 * - when the fault ends the daemon recovers by itself (a fresh domain is learned, the cached one's run of
 *   failures ends with one info line).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyRoute } from '../lab/policy-server.js';
import type { DnsFault } from '../lab/faulty-dns.js';
import { connectSocketmap } from '../lab/socketmap-client.js';
import { EVIL, WARN, ZONE, eventually, hammer, policy, secure, startDaemon, startWorld, type Daemon, type World } from './world.js';

const DNS_FAULTS: Array<[string, DnsFault | 'down', { delayMs?: number }?]> = [
  ['DNS server down (nothing listening)', 'down'],
  ['DNS answers SERVFAIL', 'servfail'],
  ['DNS answer truncated (TC=1 over UDP, TCP closed)', 'truncate'],
  ['DNS answers after 2.5 s (past the 1 s resolver timeout)', 'slow', { delayMs: 2_500 }],
  ['DNS reads queries and never answers', 'drop'],
];

const HOST_FAULTS: Array<[string, string, PolicyRoute | 'refuse', string]> = [
  // [rule, label, route while broken, reason class logged]
  ['policy host refusing connections', 'refuse', 'refuse', 'connect'],
  ['policy host resetting mid-body', 'reset', { body: EVIL, resetAfterBytes: 30 }, 'connect'],
  ['policy host sending forever', 'forever', { body: EVIL + '#'.repeat(100_000), neverEnd: true, contentLength: false }, 'size'],
  ['policy host trickling past the timeout', 'trickle', { body: EVIL, slowBody: { bytes: 1, intervalMs: 100 } }, 'timeout'],
  ['expired certificate', 'expired', { body: EVIL, cert: 'expired' }, 'tls'],
  ['certificate for another name', 'wrongname', { body: EVIL, cert: 'wrong-name' }, 'tls'],
  ['self-signed certificate', 'selfsigned', { body: EVIL, cert: 'self-signed' }, 'tls'],
  ['redirect to a policy elsewhere', 'redirect', { redirect: 'https://evil.attacker.example/.well-known/mta-sts.txt', body: EVIL }, 'http-status'],
  ['a body that breaks the grammar', 'garbage', { body: 'version: STSv1\nmode: enforce\nmx: evil.attacker.example\n' }, 'parse'],
];

const dnsLabels = DNS_FAULTS.flatMap(([, f]) => [`c-${f}`, `n-${f}`]);
const hostLabels = HOST_FAULTS.map(([, l]) => `h-${l}`);
let world: World;
let daemon: Daemon;

beforeAll(async () => {
  world = await startWorld([...dnsLabels, ...hostLabels]);
  daemon = await startDaemon(world, { yaml: 'cache: { store: memory }' });
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await world?.close();
});

const d = (label: string) => `${label}.${ZONE}`;
const warnings = (label: string, msg: RegExp) =>
  daemon.logs().filter((l) => l.level === WARN && l.domain === d(label) && msg.test(l.msg));
const recovered = (label: string) => daemon.logs().some((l) => l.msg === 'policy discovery works again' && l.domain === d(label));

describe('DNS faults', () => {
  it.each(DNS_FAULTS)('%s: cached answers stand, uncached get NOTFOUND, logged once, recovers', async (_rule, fault, options) => {
    const cached = `c-${fault}`;
    const fresh = `n-${fault}`;
    expect(await daemon.client.query('postfix', d(cached))).toBe(secure(cached));

    if (fault === 'down') await world.faulty.stop();
    else world.faulty.set(fault, options);
    const seen = await hammer(daemon.client, [d(cached), d(fresh)], 1_200);

    expect([...seen.get(d(cached))!.keys()]).toEqual([secure(cached)]);
    expect([...seen.get(d(fresh))!.keys()]).toEqual(['NOTFOUND ']);
    // Many queries, several background attempts, one warning per domain (stdout is a pipe: wait for it).
    await eventually(() => warnings(fresh, /^policy discovery failed/).length > 0 && warnings(cached, /^policy refresh failed/).length > 0, 'the warnings');
    expect(warnings(cached, /^policy refresh failed/).map((l) => l.reason)).toEqual(['dns']);
    expect(warnings(fresh, /^policy discovery failed/).map((l) => l.reason)).toEqual(['dns']);

    if (fault === 'down') await world.restartFaulty();
    else world.faulty.set('pass');
    await eventually(async () => (await daemon.client.query('postfix', d(fresh))) === secure(fresh), `${fresh} to be learned after the fault`);
    await eventually(async () => {
      await daemon.client.query('postfix', d(cached));
      return recovered(cached);
    }, `${cached} to recover`);
  });
});

// Each case has its own domain and policy host name, so they run side by side; refusing connections
// stops the whole policy server and runs alone, after them.
describe('policy host faults', () => {
  const side = HOST_FAULTS.filter(([, , route]) => route !== 'refuse');
  const alone = HOST_FAULTS.filter(([, , route]) => route === 'refuse');
  it.concurrent.each(side)('%s: the validated policy stands, nothing from the broken fetch is served, logged once, recovers', (rule, label, route, reason) => hostFault(rule, label, route, reason));
  it.each(alone)('%s: the validated policy stands, nothing from the broken fetch is served, logged once, recovers', (rule, label, route, reason) => hostFault(rule, label, route, reason));

  it('the daemon never answered with the attacker MX, and the log names no other domain for these faults', () => {
    expect(daemon.sidecar.output()).not.toContain('evil.attacker.example servername');
    expect(daemon.logs().filter((l) => l.msg === 'policy changed')).toEqual([]);
  });
});

async function hostFault(_rule: string, label: string, route: PolicyRoute | 'refuse', reason: string): Promise<void> {
  const host = `h-${label}`;
  // A connection of its own: the cases run side by side.
  const client = await connectSocketmap({ port: daemon.port });
  try {
    const first = await client.query('postfix', d(host));
    expect(first, JSON.stringify(daemon.logs().filter((l) => l.domain === d(host)))).toBe(secure(host));
    const before = world.https.requests(`mta-sts.${d(host)}`);

    if (route === 'refuse') await world.https.stop();
    else world.https.setRoute(`mta-sts.${d(host)}`, route);
    const seen = await hammer(client, [d(host)], 2_000);

    // Only the validated policy, never the attacker's MX (nor NOTFOUND: the cached policy is not dropped).
    expect([...seen.get(d(host))!.keys()]).toEqual([secure(host)]);
    // The broken host was really asked, again and again (failed TLS handshakes never become requests;
    // a trickling host holds each attempt for the whole fetch timeout).
    if (route !== 'refuse' && route.cert === undefined && reason !== 'timeout') {
      await eventually(async () => {
        expect(await client.query('postfix', d(host))).toBe(secure(host));
        return world.https.requests(`mta-sts.${d(host)}`) - before >= 2;
      }, 'a second attempt at the broken host');
    }
    await eventually(() => warnings(host, /^policy refresh failed/).length > 0, 'the warning');
    expect(warnings(host, /^policy refresh failed/).map((l) => l.reason)).toEqual([reason]);

    if (route === 'refuse') {
      const restarted = await (await import('../lab/policy-server.js')).startPolicyServer({ address: world.address, ca: world.https.ca });
      world.https = restarted;
      for (const l of [...dnsLabels, ...hostLabels]) restarted.setRoute(`mta-sts.${d(l)}`, { body: policy(l) });
    } else {
      world.https.setRoute(`mta-sts.${d(host)}`, { body: policy(host) });
    }
    await eventually(async () => {
      await client.query('postfix', d(host));
      return recovered(host);
    }, `${host} to recover`);
    expect(await client.query('postfix', d(host))).toBe(secure(host));
  } finally {
    client.close();
  }
}
