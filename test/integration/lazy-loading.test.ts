/**
 * Each command loads only what it uses (issue 12, BENCHMARKS.md "Footprint"): the built CLI, run in a
 * child process with a preload that lists the npm packages in the CommonJS module cache when the process
 * exits (ioredis, prom-client, better-sqlite3 and undici are CommonJS, so each shows there once loaded).
 * Needs `npm run build`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECK_DEFAULTS } from '../../src/check/run-check.js';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/mta-sts-sidecar');
const dir = mkdtempSync(join(tmpdir(), 'lazy-loading-'));
const PRELOAD = join(dir, 'packages.cjs');
writeFileSync(
  PRELOAD,
  `process.on('exit', () => { const s = new Set(); for (const k of Object.keys(require.cache)) { const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(k); if (m) s.add(m[1]); } require('fs').writeSync(2, 'PACKAGES ' + [...s].sort().join(' ') + '\\n'); });\n`,
);
const CONFIG = join(dir, 'config.yml');
writeFileSync(CONFIG, `cache:\n  store: sqlite\n  path: ${join(dir, 'cache.db')}\n`);

function packagesLoaded(args: string[]): { status: number | null; packages: string[]; stdout: string } {
  const r = spawnSync(process.execPath, ['-r', PRELOAD, BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  const line = r.stderr.split('\n').find((l) => l.startsWith('PACKAGES '));
  return { status: r.status, packages: line ? line.slice('PACKAGES '.length).split(' ') : [], stdout: r.stdout };
}

describe('each command loads only what it uses', () => {
  it.each<[string, string[], string[]]>([
    // command, packages it must not load
    ['--version', ['--version'], ['yaml', 'pino', 'undici', 'ioredis', 'prom-client', 'better-sqlite3', 'dns-packet']],
    ['config check', ['config', 'check', '-c', CONFIG], ['undici', 'ioredis', 'prom-client', 'better-sqlite3', 'dns-packet']],
    ['cache list (sqlite store)', ['cache', 'list', '-c', CONFIG], ['undici', 'ioredis', 'prom-client', 'dns-packet']],
  ])('%s', (_name, args, absent) => {
    const r = packagesLoaded(args);
    expect(r.status).toBe(0);
    expect(r.packages.length, 'the preload reported nothing').toBeGreaterThan(0);
    for (const p of absent) expect(r.packages, `${p} loaded`).not.toContain(p);
  });

  it('check --help shows the STARTTLS deadline default that check applies (CHECK_DEFAULTS, not loaded for --help)', () => {
    const r = packagesLoaded(['check', '--help']);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`(default: ${CHECK_DEFAULTS.smtp_timeout_ms})`);
    expect(r.packages).not.toContain('undici');
  });
});
