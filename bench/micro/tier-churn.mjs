// A full hot tier under churn (src/resolver/clock-cache.ts): N policies held, then 200,000 writes of new
// domains, each evicting one, after no reads, after reads of every entry, after reads of half. Prints the
// mean write and the slowest one (a rehash of the Map under the tier, when deleted slots have piled up).
// Run after `npm run build`: N=100000 node bench/micro/tier-churn.mjs
import { ClockCache } from '../../dist/resolver/clock-cache.js';

const N = Number(process.env.N ?? 1_000_000);
const WRITES = 200_000;
const cache = new ClockCache({ maxEntries: N, maxBytes: Number.MAX_SAFE_INTEGER, bytesOf: () => 900 });
for (let i = 0; i < N; i++) cache.set(`k${i}`, { used: false, bytes: 0, i });
for (const [what, reads] of [['no reads', 0], ['every entry read', N], ['half read', N / 2]]) {
  for (let i = 0; i < reads; i++) cache.get(`k${(i * 7919) % (N * 2)}`);
  const started = performance.now();
  let slowest = 0;
  for (let i = 0; i < WRITES; i++) {
    const t = performance.now();
    cache.set(`new-${what}-${i}`, { used: false, bytes: 0, i });
    slowest = Math.max(slowest, performance.now() - t);
  }
  const mean = ((performance.now() - started) * 1000) / WRITES;
  console.log(`${N} held, ${what}: ${mean.toFixed(2)} µs a write, slowest ${slowest.toFixed(1)} ms (size ${cache.size})`);
}
