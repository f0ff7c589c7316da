// One refresher tick at N cached policies (issue 12): the due batch (100, as resolver.refresh_batch) taken
// by scanning the hot tier (its entries, filtered and sorted: before) and from the refresh queue
// (src/resolver/due-queue.ts: after). Both over the same hot tier (src/resolver/clock-cache.ts) of N
// policy-shaped entries, 1% due.
// Run after `npm run build`: node bench/micro/refresh-tick.mjs [N]
import { ClockCache } from '../../dist/resolver/clock-cache.js';
import { DueQueue } from '../../dist/resolver/due-queue.js';

const N = Number(process.argv[2] ?? 1_000_000);
const BATCH = 100;
const ROUNDS = 5;
const now = 1_000_000;
const hot = new ClockCache({ maxEntries: N, maxBytes: Number.MAX_SAFE_INTEGER, bytesOf: () => 1 });
const queue = new DueQueue((h) => h.refreshAt);
for (let i = 0; i < N; i++) {
  // 1% due now, the rest within a day
  const refreshAt = i % 100 === 0 ? now - 1 - (i % 5000) : now + 1 + ((i * 7919) % 86_400_000);
  const h = { kind: 'policy', used: false, bytes: 0, entry: { domain: `p${i}.example` }, nextCheckAt: 0, refreshAt, queueIndex: -1 };
  hot.set(h.entry.domain, h);
  queue.add(h);
}
const inflight = new Set();

function scan() {
  const due = [];
  for (const [domain, h] of hot.entries()) if (h.kind === 'policy' && h.refreshAt <= now && !inflight.has(domain)) due.push([h.refreshAt, domain]);
  return due.sort((a, b) => a[0] - b[0]).slice(0, BATCH).map(([, d]) => d);
}
const fromQueue = () => queue.due(now, BATCH, (h) => !inflight.has(h.entry.domain)).map((h) => h.entry.domain);

const time = (fn) => {
  const t = process.hrtime.bigint();
  const r = fn();
  return [Number(process.hrtime.bigint() - t) / 1e6, r];
};
const a = [];
const b = [];
for (let i = 0; i < ROUNDS; i++) {
  const [ta, ra] = time(scan);
  const [tb, rb] = time(fromQueue);
  // The same due times in the same order (equal times may come in either order).
  const at = (ds) => ds.map((d) => hot.peek(d).refreshAt).join();
  if (at(ra) !== at(rb)) throw new Error('the two ways disagree');
  a.push(ta);
  b.push(tb);
}
const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)].toFixed(3);
console.log(`${N} policies, ${N / 100} due, batch ${BATCH}: scan ${med(a)} ms, refresh queue ${med(b)} ms (median of ${ROUNDS}, interleaved)`);
