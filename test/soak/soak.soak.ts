/**
 * The soak test (`npm run soak`, minutes, not part of `npm test`): the built daemon under steady
 * socketmap load from well-behaved clients, with periodic faults (DNS SERVFAIL, DNS silent, policy hosts
 * presenting expired certificates) and periodic abuse (garbage, 1 GB length prefixes, one-byte-per-second
 * requests, bursts of idle connections). Every few seconds it samples the daemon's RSS and open file
 * descriptors (/proc/PID/status, /proc/PID/fd). It prints the samples and the latency percentiles of the
 * well-behaved clients, overall and while abuse or a fault was under way, and fails when
 * - a well-behaved client ever gets a wrong answer (every domain is cached after the warm-up, so the
 *   answer is its policy whatever the fault), or
 * - RSS or descriptors grow: the median of the last third of the samples against the first third, beyond
 *   RSS_GROWTH_LIMIT (x 1.3 + 16 MiB) or FD_GROWTH_LIMIT (+ 20).
 *
 * SOAK_SECONDS (default 180) sets the length; SOAK_REPORT=file also writes the report as JSON.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNetstring } from '../../src/server/postfix/netstring.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';
import { ZONE, policy as policyOf, secure, sleep, startDaemon, startWorld, type Daemon, type World } from '../faults/world.js';

const SECONDS = Math.min(3_600, Math.max(30, Number(process.env.SOAK_SECONDS ?? 180)));
const DOMAINS = 200;
const CLIENTS = 4;
const SAMPLE_MS = 5_000;
const CYCLE_MS = 30_000; // one fault and one abuse burst per cycle
const RSS_GROWTH = { factor: 1.3, plusKiB: 16 * 1024 };
const FD_GROWTH = 20;

const labels = Array.from({ length: DOMAINS }, (_, i) => `k${i}`);
let world: World;
let daemon: Daemon;
let dir: string;

beforeAll(async () => {
  world = await startWorld(labels);
  dir = mkdtempSync(join(tmpdir(), 'soak-'));
  daemon = await startDaemon(world, {
    socketmap: 'max_connections: 400, request_timeout_ms: 3000, idle_timeout_ms: 5000',
    yaml: `cache: { store: sqlite, path: "${join(dir, 'cache.db')}" }`,
    // Refresh often (every policy is refetched within seconds), so the fetch and store paths run all along.
    resolver: { refetch_at_fraction: 0.0001, recheck_interval_ms: 1000 },
  });
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await world?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Sample {
  at: number;
  rssKiB: number;
  fds: number;
  phase: string;
}

function sample(pid: number, phase: string, start: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { at: Math.round((Date.now() - start) / 1000), rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)![1]), fds: readdirSync(`/proc/${pid}/fd`).length, phase };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

/** One abuse burst: garbage, a 1 GB prefix, a slow request, and 300 idle connections. Bounded in time. */
async function abuse(port: number, until: number): Promise<void> {
  const sockets: net.Socket[] = [];
  const open = () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    sockets.push(s);
    return s;
  };
  try {
    for (let i = 0; i < 20; i++) open().end(Buffer.from([0xff, 0x00, 0x41, 0x2c]));
    for (let i = 0; i < 5; i++) open().write('1073741824:' + 'x'.repeat(4096));
    const slow = open();
    for (let i = 0; i < 300; i++) open();
    const request = encodeNetstring(`postfix k0.${ZONE}`);
    for (let i = 0; i < request.length && Date.now() < until; i++) {
      slow.write(request.subarray(i, i + 1));
      await sleep(1_000);
    }
  } finally {
    for (const s of sockets) s.destroy();
  }
}

describe('soak', () => {
  it(`${SECONDS} s of steady load with periodic faults and abuse: no wrong answer, no growth`, { timeout: (SECONDS + 120) * 1000 }, async () => {
    // Warm-up: every domain learned.
    const warm = await connectSocketmap({ port: daemon.port });
    for (const l of labels) expect(await warm.query('postfix', `${l}.${ZONE}`)).toBe(secure(l));
    warm.close();

    const pid = daemon.sidecar.process.pid!;
    const start = Date.now();
    const end = start + SECONDS * 1000;
    let phase = 'steady';
    const samples: Sample[] = [sample(pid, phase, start)];
    const latencies: Record<string, number[]> = { steady: [], fault: [], abuse: [] };
    const wrong: string[] = [];
    let queries = 0;

    const client = async (c: SocketmapClient, n: number) => {
      for (let i = 0; i < 10_000_000 && Date.now() < end; i++) {
        const l = labels[(i * 7 + n * 13) % DOMAINS]!;
        const t = process.hrtime.bigint();
        const reply = await c.query('postfix', `${l}.${ZONE}`);
        latencies[phase]!.push(Number(process.hrtime.bigint() - t) / 1e6);
        queries++;
        if (reply !== secure(l) && wrong.length < 20) wrong.push(`${l}: ${reply} (${phase})`);
        await sleep(5);
      }
    };
    const faults = async () => {
      const host = (l: string) => `mta-sts.${l}.${ZONE}`;
      for (let cycle = 0; cycle < 1_000 && Date.now() < end; cycle++) {
        await sleep(Math.min(CYCLE_MS / 3, Math.max(0, end - Date.now())));
        if (Date.now() >= end) break;
        const kind = cycle % 3;
        phase = 'fault';
        if (kind === 0) world.faulty.set('servfail');
        else if (kind === 1) world.faulty.set('drop');
        // The body stays the domain's own: the lab picks the certificate per TLS handshake but the body per
        // request, so a fetch already past its handshake when the route changes would legitimately get a
        // changed body over a valid certificate. (test/faults checks that a broken host's body is never served.)
        else for (const l of labels.slice(0, 50)) world.https.setRoute(host(l), { body: policyOf(l), cert: 'expired' });
        await sleep(Math.min(CYCLE_MS / 3, Math.max(0, end - Date.now())));
        world.faulty.set('pass');
        for (const l of labels.slice(0, 50)) world.https.setRoute(host(l), { body: policyOf(l) });
        phase = 'abuse';
        await abuse(daemon.port, Math.min(end, Date.now() + CYCLE_MS / 3));
        phase = 'steady';
      }
    };
    const sampler = async () => {
      for (let i = 0; i < 100_000 && Date.now() < end; i++) {
        await sleep(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
        samples.push(sample(pid, phase, start));
      }
    };
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connectSocketmap({ port: daemon.port })));
    await Promise.all([...clients.map((c, n) => client(c, n)), faults(), sampler()]);
    for (const c of clients) c.close();
    // Let idle abusers time out, then one last sample.
    await sleep(6_000);
    samples.push(sample(pid, 'after', start));

    const third = Math.max(1, Math.floor(samples.length / 3));
    const first = samples.slice(0, third);
    const last = samples.slice(-third);
    const rss = { first: median(first.map((s) => s.rssKiB)), last: median(last.map((s) => s.rssKiB)) };
    const fds = { first: median(first.map((s) => s.fds)), last: median(last.map((s) => s.fds)), after: samples.at(-1)!.fds };
    const pct = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return { n: sorted.length, p50: +percentile(sorted, 50).toFixed(2), p90: +percentile(sorted, 90).toFixed(2), p99: +percentile(sorted, 99).toFixed(2), max: +(sorted.at(-1) ?? NaN).toFixed(2) };
    };
    const report = {
      seconds: SECONDS,
      queries,
      wrongAnswers: wrong,
      latencyMs: { steady: pct(latencies.steady!), duringFaults: pct(latencies.fault!), duringAbuse: pct(latencies.abuse!) },
      rssKiB: rss,
      fds,
      limits: { rss: `last <= first x ${RSS_GROWTH.factor} + ${RSS_GROWTH.plusKiB} KiB`, fds: `last <= first + ${FD_GROWTH}` },
      samples,
    };
    console.log(
      [
        `soak: ${SECONDS} s, ${queries} queries from ${CLIENTS} well-behaved clients, ${wrong.length} wrong answers`,
        `latency ms (p50 / p90 / p99 / max): steady ${fmt(report.latencyMs.steady)}; during faults ${fmt(report.latencyMs.duringFaults)}; during abuse ${fmt(report.latencyMs.duringAbuse)}`,
        `RSS KiB median first third ${rss.first}, last third ${rss.last}; fds ${fds.first} -> ${fds.last} (after abuse ended: ${fds.after})`,
        'samples (s, RSS KiB, fds, phase):',
        ...samples.map((s) => `  ${String(s.at).padStart(4)} ${String(s.rssKiB).padStart(8)} ${String(s.fds).padStart(5)}  ${s.phase}`),
      ].join('\n'),
    );
    if (process.env.SOAK_REPORT) writeFileSync(process.env.SOAK_REPORT, JSON.stringify(report, null, 2));

    expect(wrong).toEqual([]);
    expect(rss.last).toBeLessThanOrEqual(rss.first * RSS_GROWTH.factor + RSS_GROWTH.plusKiB);
    expect(fds.last).toBeLessThanOrEqual(fds.first + FD_GROWTH);
    expect(fds.after).toBeLessThanOrEqual(samples[0]!.fds + FD_GROWTH);
  });
});

function fmt(p: { p50: number; p90: number; p99: number; max: number; n: number }): string {
  return `${p.p50} / ${p.p90} / ${p.p99} / ${p.max} (n=${p.n})`;
}
