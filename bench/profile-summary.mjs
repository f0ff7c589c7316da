// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function, top N, and the share of
// garbage collection, idle time and our own src/ code.
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

const [file, topText = '30'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map();
let idle = 0;
let gc = 0;
let ours = 0;
for (const [id, us] of selfUs) {
  const { callFrame: f } = byId.get(id);
  const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
  const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  if (f.functionName === '(idle)') idle += us;
  if (f.functionName === '(garbage collector)') gc += us;
  if (f.url.includes('/dist/')) ours += us;
}
const busy = total - idle;
const pct = (us, of = busy) => ((100 * us) / of).toFixed(1).padStart(5) + '%';
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, busy ${(busy / 1e6).toFixed(2)} s`);
console.log(`garbage collector ${pct(gc)} of busy; our dist/ code (self) ${pct(ours)} of busy`);
console.log(`top ${topText} by self time (% of busy):`);
const rows = [...byFunction.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
for (const [k, us] of rows.slice(0, Number(topText))) console.log(`${pct(us)}  ${k}`);
