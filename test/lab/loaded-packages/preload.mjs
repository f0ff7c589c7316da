// `node --import <this>`: at exit, writes `PACKAGES <names>` to stderr: the npm packages the process
// loaded. Bundled ones through the chunks it resolved (scripts/bundle.mjs maps each chunk to the packages
// inside it, dist/bundle/packages.json); the others (better-sqlite3) through their resolved modules and the
// CommonJS module cache. LOADED_PACKAGES_DIR: where the per-process log of resolved modules goes.
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { join } from 'node:path';

const CHUNK_PACKAGES = new URL('../../../dist/bundle/packages.json', import.meta.url);
const log = join(process.env.LOADED_PACKAGES_DIR ?? '/tmp', `resolved-${process.pid}`);
register(new URL('./hooks.mjs', import.meta.url), { data: { log } });

process.on('exit', () => {
  const chunks = JSON.parse(readFileSync(CHUNK_PACKAGES, 'utf8'));
  const found = new Set();
  const resolved = existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
  const required = Object.keys(createRequire(import.meta.url).cache);
  for (const where of [...resolved, ...required]) {
    const chunk = /\/dist\/bundle\/([^/]+\.js)$/.exec(where);
    for (const name of chunk ? (chunks[chunk[1]] ?? []) : []) found.add(name);
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
    if (pkg) found.add(pkg[1]);
  }
  writeSync(2, `PACKAGES ${[...found].sort().join(' ')}\n`);
});
