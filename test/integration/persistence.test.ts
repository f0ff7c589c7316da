/**
 * The persistent cache seen from outside: a restarted daemon answers from its sqlite file before any
 * network (the world's DNS is gone), a daemon SIGKILLed in the middle of cache writes restarts with a
 * readable cache, and the `cache` commands work on the file, also while the daemon runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startBlackholeDns, startDnsServer, type BlackholeDns, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { freePort, runCli, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { connectSocketmap } from '../lab/socketmap-client.js';

const ZONE = 'persist.test';
const DOMAINS = 400;
const CRASH_ROUNDS = 6;
const domain = (i: number) => `d${i}.${ZONE}`;
const secure = (i: number) => `OK secure match=mx.d${i}.${ZONE} servername=hostname`;

let worldAddress: string;
let deadAddress: string;
let dns: DnsServer;
let blackhole: BlackholeDns;
let https: PolicyServer;
let dir: string;

function config(port: number, dnsAddress: string): string {
  return `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
dns: { servers: ["${dnsAddress}"], timeout_ms: 500, tries: 1 }
fetch: { ca_file: "${join(dir, 'ca.pem')}", allow_private_addresses: true, timeout_ms: 3000 }
resolver: { answer_deadline_ms: 1500 }
cache: { store: sqlite, path: "${join(dir, 'cache.db')}" }
log: { level: info }
`;
}

async function daemon(dnsAddress: string): Promise<{ sidecar: Sidecar; port: number }> {
  const port = await freePort();
  return { sidecar: await startSidecar(config(port, dnsAddress)), port };
}

const cli = (...args: string[]) => runCli(args);

beforeAll(async () => {
  worldAddress = await allocateLoopback();
  deadAddress = await allocateLoopback();
  https = await startPolicyServer({ address: worldAddress });
  const records: DnsRecord[] = [];
  for (let i = 0; i < DOMAINS; i++) {
    records.push({ name: `_mta-sts.d${i}`, type: 'TXT', value: [`v=STSv1; id=${i}`] });
    records.push({ name: `mta-sts.d${i}`, type: 'A', value: worldAddress });
    https.setRoute(`mta-sts.${domain(i)}`, { body: `version: STSv1\nmode: enforce\nmx: mx.d${i}.${ZONE}\nmax_age: 86400\n` });
  }
  dns = await startDnsServer({ address: worldAddress, zones: { [ZONE]: { records } } });
  blackhole = await startBlackholeDns(deadAddress);
  dir = await mkdtemp(join(tmpdir(), 'persist-'));
  await writeFile(join(dir, 'ca.pem'), https.ca.certPem);
}, 60_000);

afterAll(async () => {
  await dns?.stop();
  await blackhole?.stop();
  await https?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  for (const a of [worldAddress, deadAddress]) if (a) releaseLoopback(a);
});

describe('persistent cache (sqlite)', () => {
  it('a restarted daemon answers from the cache file before any DNS or HTTPS', async () => {
    const first = await daemon(worldAddress);
    const c1 = await connectSocketmap({ port: first.port });
    for (let i = 0; i < 5; i++) expect(await c1.query('postfix', domain(i))).toBe(secure(i));
    c1.close();
    expect(await first.sidecar.stop()).toBe(0);

    // Second life: its DNS server never answers, so only the cache can produce a policy.
    const second = await daemon(deadAddress);
    try {
      const c2 = await connectSocketmap({ port: second.port });
      for (let i = 0; i < 5; i++) expect(await c2.query('postfix', domain(i))).toBe(secure(i));
      // A domain it never learned cannot be resolved in this world: NOTFOUND, never an error.
      expect(await c2.query('postfix', domain(DOMAINS - 1))).toBe('NOTFOUND ');
      c2.close();
    } finally {
      await second.sidecar.stop();
    }
    expect(https.requests(`mta-sts.${domain(0)}`)).toBe(1);
  });

  it('cache list/show/export read the file while the daemon runs; forget removes an entry', async () => {
    const running = await daemon(deadAddress);
    try {
      const list = await cli('cache', 'list', '--json', '--config', join(running.sidecar.dir, 'config.yml'));
      expect(list.code).toBe(0);
      const domains = (JSON.parse(list.stdout) as Array<{ domain: string; mode: string }>).map((e) => e.domain);
      expect(domains).toEqual(expect.arrayContaining([domain(0), domain(4)]));

      const show = await cli('cache', 'show', domain(3), '--config', join(running.sidecar.dir, 'config.yml'));
      expect(show.code).toBe(0);
      expect(show.stdout).toMatch(/^mode: enforce$/m);
      expect(show.stdout).toContain(`mx: mx.d3.${ZONE}`);

      const exported = await cli('cache', 'export', '--config', join(running.sidecar.dir, 'config.yml'));
      const lines = exported.stdout.trim().split('\n').map((l) => JSON.parse(l) as { domain: string; text: string });
      expect(lines.find((e) => e.domain === domain(2))?.text).toContain('mode: enforce');

      const forget = await cli('cache', 'forget', domain(4), '--config', join(running.sidecar.dir, 'config.yml'));
      expect(forget).toMatchObject({ code: 0, stdout: `${domain(4)}: forgotten\n` });
      const again = await cli('cache', 'show', domain(4), '--config', join(running.sidecar.dir, 'config.yml'));
      expect(again).toMatchObject({ code: 1, stdout: `${domain(4)}: not cached\n` });
    } finally {
      await running.sidecar.stop();
    }
  });

  it('cache refresh resolves now and stores the result', async () => {
    const file = join(dir, 'refresh.yml');
    await writeFile(file, config(1, worldAddress));
    const r = await cli('cache', 'refresh', domain(7), '--json', '--config', file);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'policy', domain: domain(7), id: '7', mode: 'enforce' });
    const show = await cli('cache', 'show', domain(7), '--json', '--config', file);
    expect(JSON.parse(show.stdout)).toMatchObject({ domain: domain(7), id: '7' });
  });

  it(`a daemon SIGKILLed during cache writes restarts with a readable cache (${CRASH_ROUNDS} rounds)`, async () => {
    let next = 10;
    let known = 0;
    for (let round = 0; round < CRASH_ROUNDS; round++) {
      const writer = await daemon(worldAddress);
      // Eight clients learn new domains as fast as the daemon will; kill it at a random moment meanwhile.
      const clients = await Promise.all(Array.from({ length: 8 }, () => connectSocketmap({ port: writer.port })));
      const killAt = Date.now() + 200 + Math.floor(Math.random() * 600);
      await Promise.all(
        clients.map(async (client) => {
          while (Date.now() < killAt && next < DOMAINS - 1) await client.query('postfix', domain(next++));
        }),
      );
      writer.sidecar.process.kill('SIGKILL');
      clients.forEach((c) => c.close());
      await writer.sidecar.stop();

      const list = await cli('cache', 'list', '--json', '--config', join(dir, 'refresh.yml'));
      expect(list.code, list.stderr).toBe(0);
      const entries = JSON.parse(list.stdout) as Array<{ domain: string }>;
      // Nothing already durable is ever lost, and the file is never moved aside as corrupt.
      expect(entries.length).toBeGreaterThanOrEqual(known);
      expect(list.stderr).not.toMatch(/corrupt/);
      known = entries.length;

      // The next life, without DNS, answers every cached domain from the file.
      const reader = await daemon(deadAddress);
      try {
        const client2 = await connectSocketmap({ port: reader.port });
        const sample = entries.slice(-3);
        for (const e of sample) {
          const i = Number(/^d(\d+)\./.exec(e.domain)![1]);
          expect(await client2.query('postfix', e.domain)).toBe(secure(i));
        }
        client2.close();
      } finally {
        await reader.sidecar.stop();
      }
    }
    expect(next).toBeGreaterThan(10);
  }, 120_000);
});
