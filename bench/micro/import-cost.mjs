// Import cost of each top-level module: a fresh `node` per module, RSS and wall time after the import,
// minus the same figures for an empty script in the same run (interleaved, median of ROUNDS). Run after
// `npm run build`: node bench/micro/import-cost.mjs [--rounds N] [--json]. A new dependency's cost shows
// here, module by module (they overlap: undici is also loaded by what imports it).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const ROUNDS = Number(args[args.indexOf('--rounds') + 1]) > 0 && args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 5;
const dist = (p) => pathToFileURL(join(ROOT, 'dist', p)).href;

/** The bundle's chunk of `serve` (its name carries a content hash). */
function serveChunk() {
  return Object.keys(JSON.parse(readFileSync(join(ROOT, 'dist/bundle/packages.json'), 'utf8'))).find((f) => f.startsWith('serve-'));
}

/** What a process loads: the dependencies alone, then our entry points (each imports what it uses). */
export const MODULES = [
  ['commander', 'commander'],
  ['yaml', 'yaml'],
  ['pino', 'pino'],
  ['dns-packet', 'dns-packet'],
  ['better-sqlite3', 'better-sqlite3'],
  ['undici', 'undici'],
  ['ioredis', 'ioredis'],
  ['prom-client', 'prom-client'],
  ['dist/bundle/main.js (the CLI as bin/ runs it, nothing run)', dist('bundle/main.js')],
  ['dist/cli/main.js (the same, unbundled)', dist('cli/main.js')],
  ['dist/config/load.js', dist('config/load.js')],
  ['dist/cache/open-store.js', dist('cache/open-store.js')],
  ['dist/resolver/resolver.js', dist('resolver/resolver.js')],
  ['dist/app/metrics.js', dist('app/metrics.js')],
  ['dist/app/service.js (the daemon)', dist('app/service.js')],
  ['dist/bundle/serve-*.js (the daemon as bin/ runs it)', dist(`bundle/${serveChunk()}`)],
  ['dist/check/run-check.js', dist('check/run-check.js')],
];

// The child imports the module, then prints its RSS and the time since the process began.
const probe = (spec) =>
  `const t=performance.now();await import(${JSON.stringify(spec)});` +
  `const r=process.memoryUsage();console.log(JSON.stringify({rss:r.rss,heap:r.heapUsed,ms:performance.now()}))`;

function once(spec) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', spec === null ? probe('node:os') : probe(spec)], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${spec}: ${r.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const base = [];
const runs = new Map(MODULES.map(([name]) => [name, []]));
for (let i = 0; i < ROUNDS; i++) {
  base.push(once(null));
  for (const [name, spec] of MODULES) runs.get(name).push(once(spec));
}
const b = { rss: median(base.map((x) => x.rss)), heap: median(base.map((x) => x.heap)), ms: median(base.map((x) => x.ms)) };
const rows = MODULES.map(([name]) => {
  const xs = runs.get(name);
  return {
    module: name,
    rss_mib: Math.round((median(xs.map((x) => x.rss)) - b.rss) / 104857.6) / 10,
    heap_mib: Math.round((median(xs.map((x) => x.heap)) - b.heap) / 104857.6) / 10,
    ms: Math.round(median(xs.map((x) => x.ms)) - b.ms),
  };
});
if (args.includes('--json')) {
  console.log(JSON.stringify({ rounds: ROUNDS, bare: { rss_mib: Math.round(b.rss / 104857.6) / 10, ms: Math.round(b.ms) }, modules: rows }));
} else {
  console.log(`bare node: ${(b.rss / 2 ** 20).toFixed(1)} MiB RSS, ${Math.round(b.ms)} ms to the end of an empty import (median of ${ROUNDS})`);
  console.log('| module | + RSS MiB | + heap MiB | + ms |\n| --- | ---: | ---: | ---: |');
  for (const r of rows) console.log(`| ${r.module} | ${r.rss_mib} | ${r.heap_mib} | ${r.ms} |`);
}
