// How a JS Map lookup by a domain-name string scales with the number of keys on this machine: the floor
// under scenario 2 (the hot tier is a Map, src/resolver/clock-cache.ts). Each lookup uses a fresh key
// string, as a request does. Two rows per size: the Map and one field of its value; and the whole chain
// an answer must read (hot entry -> cache entry -> policy -> mx patterns -> their names), built as the
// sqlite store's warm load builds it (JSON.parse of each row's policy).   node bench/micro/map-scaling.mjs
const SIZES = [1_000, 100_000, 1_000_000];
const LOOKUPS = 2_000_000;
let x = 0x9e3779b9;
const rnd = (n) => {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) % n;
};
const shallow = (v) => (v.expiresAt > 0 ? 1 : 0);
const chain = (v) => {
  let n = 0;
  for (const p of v.entry.policy.mx) n += p.domain.length;
  return v.entry.expiresAt > 0 && n > 0 ? 1 : 0;
};
function policyEntry(domain) {
  const policy = JSON.parse(JSON.stringify({ version: 'STSv1', mode: 'enforce', maxAge: 604800, mx: [{ wildcard: false, domain: `mx1.${domain}` }, { wildcard: true, domain: `mx.${domain}` }], extensions: [] }));
  const now = Date.now();
  const entry = { domain, id: 'bench1', policy, text: `version: STSv1\r\nmode: enforce\r\nmx: mx1.${domain}\r\nmx: *.mx.${domain}\r\nmax_age: 604800\r\n`, fetchedAt: now, expiresAt: now + 6e8, checkedAt: now, lastError: null, failures: 0 };
  return { kind: 'policy', used: false, bytes: 0, entry, nextCheckAt: now + 3.6e6, refreshAt: now + 8.64e7, queueIndex: -1, expiresAt: entry.expiresAt };
}
for (const n of SIZES) {
  const map = new Map();
  for (let i = 0; i < n; i++) map.set(`p${i}.bench.test`, policyEntry(`p${i}.bench.test`));
  for (const [what, read] of [['Map + one field', shallow], ['Map + the chain an answer reads', chain]]) {
    let hits = 0;
    for (let i = 0; i < 200_000; i++) hits += read(map.get(`p${rnd(n)}.bench.test`));
    const t = process.hrtime.bigint();
    for (let i = 0; i < LOOKUPS; i++) hits += read(map.get(`p${rnd(n)}.bench.test`));
    const ns = Number(process.hrtime.bigint() - t) / LOOKUPS;
    console.log(`${String(n).padStart(9)} keys, ${what}: ${ns.toFixed(0).padStart(5)} ns per lookup (${hits > 0 ? 'ok' : '?'})`);
  }
}
