// The daemon as it runs: tsc's output (dist/) bundled into dist/bundle/, one chunk per lazily imported
// part (a command, a store client, undici, prom-client), so a process reads about 30 files instead of about
// 250 modules. Measured (BENCHMARKS.md, "Footprint"): idle RSS 70.6 -> 62.8 MiB, and shorter CLI start-up.
// better-sqlite3 stays outside: a native addon found through its own package. Run by `npm run build`.
// Also writes dist/bundle/packages.json: the npm packages in each chunk, for the test of what each
// command loads (test/integration/lazy-loading.test.ts).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'rolldown';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist/bundle');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

rmSync(OUT, { recursive: true, force: true });
const result = await build({
  input: join(ROOT, 'dist/cli/main.js'),
  platform: 'node',
  external: ['better-sqlite3'],
  logLevel: 'warn',
  // src/version.ts: the bundle has the version compiled in (it no longer sits one folder below package.json).
  transform: { define: { __PACKAGE_VERSION__: JSON.stringify(version) } },
  output: { dir: OUT, format: 'esm', entryFileNames: 'main.js', chunkFileNames: '[name]-[hash].js' },
});

const packages = {};
for (const chunk of result.output) {
  if (chunk.type !== 'chunk') continue;
  const names = new Set();
  for (const id of chunk.moduleIds) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(id);
    if (m) names.add(m[1]);
  }
  packages[chunk.fileName] = [...names].sort();
}
writeFileSync(join(OUT, 'packages.json'), `${JSON.stringify(packages, null, 1)}\n`);
