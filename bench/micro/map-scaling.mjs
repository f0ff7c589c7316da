// How a JS Map lookup by a domain-name string scales with the number of keys on this machine: the floor
// under scenario 2 (the hot tier is a Map, src/resolver/clock-cache.ts). Each lookup uses a fresh key string, as a
// request does.   node bench/micro/map-scaling.mjs
const SIZES = [1_000, 100_000, 1_000_000];
const LOOKUPS = 2_000_000;
let x = 0x9e3779b9;
const rnd = (n) => {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) % n;
};
for (const n of SIZES) {
  const map = new Map();
  for (let i = 0; i < n; i++) map.set(`p${i}.bench.test`, { expiresAt: Date.now() + 1e9 });
  let hits = 0;
  for (let i = 0; i < 200_000; i++) hits += map.get(`p${rnd(n)}.bench.test`).expiresAt > 0 ? 1 : 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) hits += map.get(`p${rnd(n)}.bench.test`).expiresAt > 0 ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - t) / LOOKUPS;
  console.log(`${String(n).padStart(9)} keys: ${ns.toFixed(0).padStart(5)} ns per lookup (${hits > 0 ? 'ok' : '?'})`);
}
