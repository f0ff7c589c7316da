/**
 * A quick loop for profiling the cached-answer path, without the lab: a sqlite store is filled with one
 * policy for the queried domain, the built daemon starts on it (optionally under `node --cpu-prof`), and
 * the native client drives it beside the bare responder.
 *
 *   node bench/.build/bench/hotpath.js [--connections 50] [--depth 1] [--duration 5] [--rounds 1]
 *        [--store sqlite|memory] [--profile DIR] [--domain p0.bench.test] [--only sidecar]
 *        [--bin OTHER_CHECKOUT/bin/mta-sts-sidecar] [--policies N [--random] [--db PATH]]
 *
 * Run after bench/run.sh has built everything once (or: npm run build && npx tsc -p bench/tsconfig.json
 * && cc -O2 -o bench/.build/socketmap-load bench/client/socketmap-load.c).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { populateStore } from './populate.js';
import { queryOnce, runClient, startBare, startSidecar, type Server } from './procs.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const connections = Number(opt('connections', '50'));
const depth = Number(opt('depth', '1'));
const durationS = Number(opt('duration', '5'));
const rounds = Number(opt('rounds', '1'));
const store = opt('store', 'sqlite') as 'sqlite' | 'memory';
const profileDir = opt('profile', '');
const domain = opt('domain', 'p0.bench.test');
const bin = opt('bin', '');
const only = opt('only', '');
const policies = Number(opt('policies', '10'));
const random = args.includes('--random');
const dbOption = opt('db', '');

/** Server CPU time per answered query: steadier than q/s on a machine others are using. */
const cpuPerQuery = (r: { server_cpu_pct?: number; qps: number }) =>
  r.server_cpu_pct === undefined ? '?' : ((r.server_cpu_pct / 100) * 1e6 / r.qps).toFixed(2);

const tmp = await mkdtemp(join(tmpdir(), 'mta-sts-hotpath-'));
const servers: Server[] = [];
try {
  // --db keeps a populated store between runs (its entries count as checked when written: reuse it for
  // less than resolver.recheck_interval_ms, 10 minutes, or re-checks start in the background).
  const dbPath = dbOption || join(tmp, 'cache.db');
  if (!dbOption || !existsSync(dbPath)) await populateStore(dbPath, policies);
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const sidecar = await startSidecar({
    store,
    dbPath,
    // Nothing is resolved: every queried domain is in the store. The DNS address only has to be loopback.
    dnsAddress: '127.0.0.1:9',
    caFile: '/etc/ssl/certs/ca-certificates.crt',
    nodeArgs: [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(process.env.HOTPATH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    memoryEntries: Math.max(policies, 100_000),
    ...(bin ? { bin } : {}),
  });
  servers.push(sidecar);
  if (policies > 10) await sidecar.waitFor('"msg":"cached policies loaded"', 300_000);
  const reply = await queryOnce(sidecar.port, `postfix ${domain}`);
  process.stderr.write(`sidecar (${store}): ${reply}\n`);
  const bare = await startBare(reply);
  servers.push(bare);
  for (let r = 0; r < rounds; r++) {
    for (const s of only === 'sidecar' ? [sidecar] : [bare, sidecar]) {
      const res = await runClient(
        random && s === sidecar
          ? { port: s.port, connections, depth, durationS, warmupS: 1, keyFormat: 'p%u.bench.test', keys: policies, random: true, expect: 'OK secure' }
          : { port: s.port, connections, depth, durationS, warmupS: 1, key: domain, expect: 'OK secure' },
        s.pid,
      );
      process.stdout.write(
        `${s.name.padEnd(16)} c=${connections} d=${depth}: ${Math.round(res.qps)} q/s p50 ${res.p50_us} p99 ${res.p99_us} p99.9 ${res.p999_us} us; server CPU ${res.server_cpu_pct}% = ${cpuPerQuery(res)} us/query; client CPU ${res.client_cpu_pct}% errors ${res.connection_errors + res.protocol_errors + res.unexpected}\n`,
      );
    }
  }
  if (process.env.HOTPATH_OUTPUT) process.stderr.write(servers[0]?.output() ?? '');
} finally {
  for (const s of servers) await s.stop();
  await rm(tmp, { recursive: true, force: true });
}
