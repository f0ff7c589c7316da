/**
 * Scenario 6, footprint (issue 12): memory at rest and under load, and the wall time of short CLI
 * commands, each beside a bare Node process measured in the same run (and postfix-mta-sts-resolver where
 * installed). Ratios are compared with a stored baseline (bench/results/footprint-baseline.json): a
 * ratio more than 10% above its baseline fails the bench.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { get } from 'node:http';
import { dirname, join } from 'node:path';
import { BIN, ROOT, procStatus, queryOnce, runClient, sleep, startBare, startResolver, startSidecar, type Server } from './procs.js';
import { CACHED_DOMAIN, CACHED_REPLY, type World } from './world.js';

export const BASELINE = join(ROOT, 'bench/results/footprint-baseline.json');
/** A footprint ratio may grow this much over its baseline before the bench fails. */
export const REGRESSION_TOLERANCE = 1.1;
/** After "ready", before idle memory is read: start-up garbage collected, timers settled. */
const IDLE_SETTLE_MS = 3_000;
const CLI_ROUNDS = 7;
const LOAD_CONNECTIONS = 50;
/** Interleaved rounds of the import-cost probe (a fresh node per module per round). */
const IMPORT_ROUNDS = 3;

/** The issue's targets, as ratios to a bare Node process in the same run. */
export const FOOTPRINT_TARGETS = { idle_rss: 1.5, loaded_rss: 2, cli_wall: 3 } as const;

export interface FootprintContext {
  world: World;
  python: boolean;
  durationS: number;
  warmupS: number;
  log(line: string): void;
  started<T extends Server>(s: Promise<T>): Promise<T>;
  bin?: string | null;
}

const mib = (kib: number) => Math.round(kib / 102.4) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function scrape(port: number): Promise<number> {
  return new Promise((ok, fail) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let n = 0;
      res.on('data', (b: Buffer) => (n += b.length));
      res.on('end', () => ok(n));
    }).once('error', fail);
  });
}

/** Wall time and peak RSS of one command, by /usr/bin/time (the kernel's rusage of the finished child). */
function timed(cmd: string[]): { wallS: number; maxRssKiB: number; status: number | null; output: string } {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', ...cmd], { encoding: 'utf8', cwd: ROOT });
  const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
  return { wallS: m ? Number(m[1]) : NaN, maxRssKiB: m ? Number(m[2]) : NaN, status: r.status, output: `${r.stdout}\n${r.stderr}`.trim() };
}

export async function scenario6(ctx: FootprintContext) {
  const { world } = ctx;
  const bin = ctx.bin ?? BIN;
  // 1. Idle: each process as started, nothing asked yet; ours with the sqlite store and /metrics on.
  const bare = await ctx.started(startBare(CACHED_REPLY));
  const ours = await ctx.started(startSidecar({ store: 'sqlite', metrics: true, dnsAddress: world.dnsAddress, caFile: world.caFile, bin }));
  const peer = ctx.python ? await ctx.started(startResolver({ cache: 'internal', caBundleFile: world.caBundleFile })) : undefined;
  await sleep(IDLE_SETTLE_MS);
  const idle: Record<string, number> = { bare: procStatus(bare.pid).rssKiB, sidecar: procStatus(ours.pid).rssKiB };
  if (peer) idle.resolver = procStatus(peer.pid).rssKiB;
  // As Prometheus sees it: after a scrape (prom-client is loaded at the first one).
  await scrape(ours.httpPort!);
  await sleep(1_000);
  idle.sidecar_scraped = procStatus(ours.pid).rssKiB;
  ctx.log(`idle RSS: bare ${mib(idle.bare!)} MiB, ours ${mib(idle.sidecar!)} (${mib(idle.sidecar_scraped)} after a scrape)${peer ? `, resolver ${mib(idle.resolver!)}` : ''}`);

  // 2. Under scenario 1's load: 50 connections, the cached domain (the mx-filter lookups are in scenario 1's matrix).
  const request = `postfix ${CACHED_DOMAIN}`;
  const loaded: Record<string, { qps: number; p99_us: number; rss_kib: number; peak_rss_kib: number }> = {};
  const load = async (key: string, s: Server, name: string, k: string, expect: string) => {
    const r = await runClient({ port: s.port, connections: LOAD_CONNECTIONS, durationS: ctx.durationS, warmupS: ctx.warmupS, name, key: k, expect }, s.pid);
    const st = procStatus(s.pid);
    loaded[key] = { qps: Math.round(r.qps), p99_us: r.p99_us, rss_kib: st.rssKiB, peak_rss_kib: st.peakRssKiB };
    ctx.log(`${key}: ${Math.round(r.qps)} q/s, p99 ${r.p99_us} us, RSS ${mib(st.rssKiB)} MiB (peak ${mib(st.peakRssKiB)})`);
  };
  for (const s of [ours, bare, ...(peer ? [peer] : [])]) {
    let reply = '';
    for (let i = 0; i < 20 && !reply.startsWith('OK secure'); i++) {
      reply = await queryOnce(s.port, request);
      if (!reply.startsWith('OK secure')) await sleep(250);
    }
  }
  await load('bare', bare, 'postfix', CACHED_DOMAIN, 'OK secure');
  await load('sidecar', ours, 'postfix', CACHED_DOMAIN, 'OK secure');
  if (peer) await load('resolver', peer, 'postfix', CACHED_DOMAIN, 'OK secure');
  // The daemon's config, kept for the CLI commands (its directory goes with the daemon).
  const cliDir = mkdtempSync(join(tmpdir(), 'mta-sts-bench-cli-'));
  const configText = readFileSync(ours.configFile, 'utf8').replaceAll(dirname(ours.configFile), cliDir);
  const configFile = join(cliDir, 'config.yml');
  writeFileSync(configFile, configText);
  // Its store too, for `cache show` of the cached domain (the WAL holds the latest writes).
  for (const f of ['cache.db', 'cache.db-wal']) {
    const from = join(dirname(ours.configFile), f);
    if (existsSync(from)) copyFileSync(from, join(cliDir, f));
  }
  for (const s of [ours, bare, ...(peer ? [peer] : [])]) await s.stop();

  // 3. Short CLI commands against `node -e 0`, interleaved, median of CLI_ROUNDS.
  const commands: Record<string, string[]> = {
    node_e_0: [process.execPath, '-e', '0'],
    version: [process.execPath, bin, '--version'],
    config_check: [process.execPath, bin, 'config', 'check', '-c', configFile],
    // `query` resolves over the network (its time is the lab's); the cached domain is read by `cache show`.
    cache_show: [process.execPath, bin, 'cache', 'show', CACHED_DOMAIN, '-c', configFile],
  };
  const cliRuns: Record<string, Array<{ wallS: number; maxRssKiB: number }>> = {};
  /** Commands that exited non-zero (timed all the same; the table says so). */
  const failed = new Map<string, string>();
  for (let i = 0; i < CLI_ROUNDS; i++) {
    for (const [name, cmd] of Object.entries(commands)) {
      const r = timed(cmd);
      if (r.status !== 0 && !failed.has(name)) {
        failed.set(name, `exited ${r.status}: ${r.output.slice(-500)}`);
        ctx.log(`${cmd.slice(1).join(' ')} exited ${r.status}:\n${r.output.slice(-2000)}`);
      }
      (cliRuns[name] ??= []).push(r);
    }
  }
  const cli = Object.fromEntries(
    Object.entries(cliRuns).map(([name, runs]) => [name, { wall_s: median(runs.map((r) => r.wallS)), peak_rss_kib: median(runs.map((r) => r.maxRssKiB)) }]),
  );
  ctx.log(`CLI wall s (median of ${CLI_ROUNDS}): ${Object.entries(cli).map(([k, v]) => `${k} ${v.wall_s}`).join(', ')}`);
  const base = cli.node_e_0!.wall_s;
  const ratios: Record<string, number> = {
    idle_rss: idle.sidecar! / idle.bare!,
    idle_rss_scraped: idle.sidecar_scraped / idle.bare!,
    loaded_rss: loaded.sidecar!.rss_kib / loaded.bare!.rss_kib,
    cli_version: cli.version!.wall_s / base,
    cli_config_check: cli.config_check!.wall_s / base,
    cli_cache_show: cli.cache_show!.wall_s / base,
  };
  for (const k of Object.keys(ratios)) ratios[k] = Math.round(ratios[k]! * 100) / 100;
  rmSync(dirname(configFile), { recursive: true, force: true });
  const imports = importCosts();
  ctx.log(`import cost measured for ${imports.modules.length} modules`);
  return { idle_rss_kib: idle, loaded, cli, cli_rounds: CLI_ROUNDS, cli_failed: Object.fromEntries(failed), ratios, imports, config: configText };
}

interface ImportCosts {
  rounds: number;
  bare: { rss_mib: number; ms: number };
  modules: Array<{ module: string; rss_mib: number; heap_mib: number; ms: number }>;
}

/** What each top-level module and dependency adds when imported alone (bench/micro/import-cost.mjs): a new dependency's cost shows here. */
function importCosts(): ImportCosts {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench/micro/import-cost.mjs'), '--json', '--rounds', String(IMPORT_ROUNDS)], { encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) throw new Error(`import-cost.mjs exited ${r.status}: ${r.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ImportCosts;
}

export type Footprint = Awaited<ReturnType<typeof scenario6>>;

/** The ratio each footprint figure is held to, by name. */
const TARGET_OF: Record<string, number> = {
  idle_rss: FOOTPRINT_TARGETS.idle_rss,
  idle_rss_scraped: FOOTPRINT_TARGETS.idle_rss,
  loaded_rss: FOOTPRINT_TARGETS.loaded_rss,
  cli_version: FOOTPRINT_TARGETS.cli_wall,
  cli_config_check: FOOTPRINT_TARGETS.cli_wall,
  cli_cache_show: FOOTPRINT_TARGETS.cli_wall,
};

/** Ratios more than REGRESSION_TOLERANCE above the stored baseline (none when there is no baseline). */
export function regressions(f: Footprint): string[] {
  if (!existsSync(BASELINE)) return [];
  const base = JSON.parse(readFileSync(BASELINE, 'utf8')) as { ratios: Record<string, number> };
  const out: string[] = [];
  for (const [k, v] of Object.entries(f.ratios)) {
    const b = base.ratios[k];
    if (b !== undefined && v > b * REGRESSION_TOLERANCE) out.push(`${k}: ${v}x of bare Node, baseline ${b}x (more than ${Math.round((REGRESSION_TOLERANCE - 1) * 100)}% worse)`);
  }
  return out;
}

export function writeBaseline(f: Footprint, commit: string): void {
  writeFileSync(BASELINE, JSON.stringify({ commit, written_at: new Date().toISOString(), ratios: f.ratios }, null, 2) + '\n');
}

export function footprintTargets(f: Footprint) {
  const rows = Object.entries(f.ratios).map(([k, v]) => ({
    scenario: 6,
    target: `${k.replace(/_/g, ' ')} <= ${TARGET_OF[k]}x ${k.startsWith('cli_') ? '`node -e 0` wall time' : 'bare Node RSS'} (same run)`,
    value: `${v}x`,
    met: v <= TARGET_OF[k]!,
  }));
  return rows;
}

export function footprintMarkdown(f: Footprint): string[] {
  const lines: string[] = [];
  const m = (kib: number | undefined) => (kib === undefined ? '' : String(mib(kib)));
  lines.push('### Scenario 6: footprint (same run, beside a bare Node process)', '');
  lines.push('| | bare Node | mta-sts-sidecar | ratio | postfix-mta-sts-resolver |', '| --- | ---: | ---: | ---: | ---: |');
  const i = f.idle_rss_kib;
  lines.push(`| idle RSS MiB (after start, ${IDLE_SETTLE_MS / 1000} s) | ${m(i.bare)} | ${m(i.sidecar)} | ${f.ratios.idle_rss} | ${m(i.resolver)} |`);
  lines.push(`| idle RSS MiB after one /metrics scrape | ${m(i.bare)} | ${m(i.sidecar_scraped)} | ${f.ratios.idle_rss_scraped} | |`);
  const l = f.loaded;
  lines.push(`| RSS MiB under scenario 1 (${LOAD_CONNECTIONS} conns) | ${m(l.bare?.rss_kib)} | ${m(l.sidecar?.rss_kib)} | ${f.ratios.loaded_rss} | ${m(l.resolver?.rss_kib)} |`);
  lines.push(`| answers/s under that load | ${l.bare?.qps ?? ''} | ${l.sidecar?.qps ?? ''} | | ${l.resolver?.qps ?? ''} |`);
  const c = f.cli;
  lines.push(`| \`--version\` wall s (\`node -e 0\`: ${c.node_e_0!.wall_s}) | ${c.node_e_0!.wall_s} | ${c.version!.wall_s} | ${f.ratios.cli_version} | |`);
  lines.push(`| \`config check\` wall s | ${c.node_e_0!.wall_s} | ${c.config_check!.wall_s} | ${f.ratios.cli_config_check} | |`);
  lines.push(`| \`cache show ${CACHED_DOMAIN}\` wall s (the cached domain, sqlite store)${f.cli_failed.cache_show ? ' **(exited non-zero)**' : ''} | ${c.node_e_0!.wall_s} | ${c.cache_show!.wall_s} | ${f.ratios.cli_cache_show} | |`);
  lines.push(`| CLI peak RSS MiB: node -e 0 / --version / config check / cache show | ${m(c.node_e_0!.peak_rss_kib)} | ${m(c.version!.peak_rss_kib)} / ${m(c.config_check!.peak_rss_kib)} / ${m(c.cache_show!.peak_rss_kib)} | | |`);
  const im = f.imports;
  lines.push(
    '',
    `Import cost, each module alone in a fresh \`node\` beside an empty import (${im.bare.rss_mib} MiB, ${im.bare.ms} ms), median of ${im.rounds} interleaved rounds; they overlap (bench/micro/import-cost.mjs):`,
    '',
    '| module | + RSS MiB | + heap MiB | + ms |',
    '| --- | ---: | ---: | ---: |',
    ...im.modules.map((r) => `| ${r.module} | ${r.rss_mib} | ${r.heap_mib} | ${r.ms} |`),
    '',
  );
  return lines;
}
