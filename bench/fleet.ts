/**
 * The fleet scenario (issue 11): five daemons on one redis-server, every one asked about the same 1000
 * new domains at once (the bench world's cold domains), then the same domains again, warm, for a few
 * seconds. Reports answers per second of the fleet (cold and warm) and policy fetches per domain (the
 * fleet lease should make it 1.0).
 *
 *   node bench/.build/bench/fleet.js [--daemons 5] [--domains 1000] [--duration 4] [--connections 10]
 *   (--connections: per daemon in the warm phase, 16 queries deep)
 *
 * Scenario 7 of bench/run.ts (with FLEET_BENCH_DOMAINS domains), or alone as above once bench/run.sh has
 * built what it needs (the daemon, this file, the native client).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRedis } from '../test/lab/redis.js';
import { BIN, cpuSeconds, freePort, runClient, type ClientResult } from './procs.js';
import { COLD_DOMAINS, ZONE, startWorld, type World } from './world.js';

/**
 * New domains per run in bench/run.ts: 1,000 on five daemons (5,000 connections at once) did not finish
 * within 120 s on the loaded two-core machine (BENCHMARKS.md, "Fleet"); 200 take about 10 s.
 */
export const FLEET_BENCH_DOMAINS = 200;

export interface FleetResult {
  daemons: number;
  domains: number;
  cold_seconds_until_all_answered: number;
  cold_answers_per_second: number;
  cold_answered_ok: number;
  policy_fetches: number;
  fetches_per_domain: number;
  max_fetches_of_one_domain: number;
  warm_answers_per_second: number;
  warm_p99_us: number;
  /** CPU of all daemons together during the cold phase. */
  cold_daemon_cpu_s: number;
}

interface Daemon {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startFleetDaemon(world: World, redisUrl: string): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-bench-fleet-'));
  const port = await freePort();
  const config = `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
http: { listen: [] }
dns: { servers: ["${world.dnsAddress}"] }
fetch: { ca_file: "${world.caFile}", allow_private_addresses: true }
cache: { store: redis, redis_url: "${redisUrl}" }
log: { level: warn }
`;
  await writeFile(join(dir, 'config.yml'), config);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', join(dir, 'config.yml')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  // log.level warn hides the ready line: wait for the port instead (bounded).
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`fleet daemon exited:\n${out}`);
    if (Date.now() > deadline) throw new Error(`fleet daemon not listening after 20 s:\n${out}`);
    if (await listening(port)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function fleetScenario(world: World, options: { daemons?: number; durationS?: number; connections?: number; domains?: number } = {}): Promise<FleetResult> {
  const n = options.daemons ?? 5;
  const domains = Math.min(options.domains ?? COLD_DOMAINS, COLD_DOMAINS);
    const redis = await startRedis();
  const daemons: Daemon[] = [];
  try {
    for (let i = 0; i < n; i++) daemons.push(await startFleetDaemon(world, redis.url));
    world.web.resetCounts();
    const cpu0 = daemons.map((d) => cpuSeconds(d.pid));
    // Cold: every daemon asked about every new domain once, one connection per domain (as scenario 3),
    // all daemons at the same time.
    const cold: ClientResult[] = await Promise.all(
      daemons.map((d) =>
        runClient({ port: d.port, connections: domains, once: true, keyFormat: `c%u.${ZONE}`, keys: domains, timeoutS: 120, expect: 'OK secure' }),
      ),
    );
    const coldSeconds = Math.max(...cold.map((r) => r.seconds));
    const coldCpu = daemons.reduce((sum, d, i) => sum + cpuSeconds(d.pid) - cpu0[i]!, 0);
    const perDomain = Array.from({ length: domains }, (_, i) => world.web.requests(`mta-sts.c${i}.${ZONE}`));
    const fetches = perDomain.reduce((a, b) => a + b, 0);
    // Warm: the same domains, from memory, on all daemons at once.
    const warm: ClientResult[] = await Promise.all(
      daemons.map((d) =>
        runClient({ port: d.port, connections: options.connections ?? 10, depth: 16, durationS: options.durationS ?? 4, warmupS: 1, keyFormat: `c%u.${ZONE}`, keys: domains, random: true, expect: 'OK secure' }),
      ),
    );
    return {
      daemons: n,
      domains,
      cold_seconds_until_all_answered: coldSeconds,
      cold_answers_per_second: Math.round((n * domains) / coldSeconds),
      cold_answered_ok: cold.reduce((sum, r) => sum + r.replies.ok, 0),
      policy_fetches: fetches,
      fetches_per_domain: Math.round((fetches / domains) * 1000) / 1000,
      max_fetches_of_one_domain: Math.max(...perDomain),
      warm_answers_per_second: Math.round(warm.reduce((sum, r) => sum + r.qps, 0)),
      warm_p99_us: Math.max(...warm.map((r) => r.p99_us)),
      cold_daemon_cpu_s: Math.round(coldCpu * 10) / 10,
    };
  } finally {
    for (const d of daemons) await d.stop();
    await redis.close();
  }
}

if (process.argv[1]?.endsWith('/fleet.js')) {
  const { values } = parseArgs({ options: { daemons: { type: 'string' }, duration: { type: 'string' }, connections: { type: 'string' }, domains: { type: 'string' } } });
  const world = await startWorld();
  try {
    const result = await fleetScenario(world, {
      daemons: values.daemons ? Number(values.daemons) : 5,
      durationS: values.duration ? Number(values.duration) : 4,
      connections: values.connections ? Number(values.connections) : 10,
      domains: values.domains ? Number(values.domains) : COLD_DOMAINS,
    });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await world.stop();
  }
}
