/**
 * Each command loads only what it uses (issue 12, BENCHMARKS.md "Footprint"): the built CLI, run in a
 * child process with a preload (test/lab/loaded-packages) that lists at exit the npm packages the process
 * loaded, bundled or not. Needs `npm run build`.
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
const PRELOAD = join(ROOT, 'test/lab/loaded-packages/preload.mjs');
const ENV = { ...process.env, LOADED_PACKAGES_DIR: dir };
const CONFIG = join(dir, 'config.yml');
writeFileSync(CONFIG, `cache:\n  store: sqlite\n  path: ${join(dir, 'cache.db')}\n`);

function packagesLoaded(args: string[]): { status: number | null; packages: string[]; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', PRELOAD, BIN, ...args], { encoding: 'utf8', timeout: 20_000, env: ENV });
  const line = r.stderr.split('\n').find((l) => l.startsWith('PACKAGES '));
  return { status: r.status, packages: line ? line.slice('PACKAGES '.length).split(' ') : [], stdout: r.stdout };
}

describe('each command loads only what it uses', () => {
  it.each<[string, string[], string[], string[]]>([
    // command, packages it must not load, packages it needs (so that the listing is known to work)
    ['--version', ['--version'], ['yaml', 'pino', 'undici', 'ioredis', 'prom-client', 'better-sqlite3', 'dns-packet'], ['commander']],
    ['config check', ['config', 'check', '-c', CONFIG], ['undici', 'ioredis', 'prom-client', 'better-sqlite3', 'dns-packet'], ['commander', 'yaml']],
    ['cache list (sqlite store)', ['cache', 'list', '-c', CONFIG], ['undici', 'ioredis', 'prom-client', 'dns-packet'], ['yaml', 'better-sqlite3']],
  ])('%s', (_name, args, absent, present) => {
    const r = packagesLoaded(args);
    expect(r.status).toBe(0);
    for (const p of present) expect(r.packages, `${p} not listed`).toContain(p);
    for (const p of absent) expect(r.packages, `${p} loaded`).not.toContain(p);
  });

  it('check --help shows the STARTTLS deadline default that check applies (CHECK_DEFAULTS, not loaded for --help)', () => {
    const r = packagesLoaded(['check', '--help']);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`(default: ${CHECK_DEFAULTS.smtp_timeout_ms})`);
    expect(r.packages).not.toContain('undici');
  });
});

describe('serve loads the metrics library only when /metrics is served, and no HTTP client before a fetch', () => {
  async function freePort(): Promise<number> {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as { port: number };
    await new Promise<void>((ok) => server.close(() => ok()));
    return port;
  }

  it.each<[string, boolean]>([
    // case, whether /metrics is served: prom-client expected after start-up and one scrape
    ['http.listen empty: never', false],
    ['http.listen set: at the first scrape', true],
  ])('%s', async (_case, expected) => {
    const { spawn } = await import('node:child_process');
    const config = join(dir, `serve-${expected}.yml`);
    const httpPort = await freePort();
    writeFileSync(
      config,
      `socketmap:\n  listen: ["tcp:127.0.0.1:${await freePort()}"]\nhttp:\n  listen: ${expected ? `["tcp:127.0.0.1:${httpPort}"]` : '[]'}\n` +
        `dns:\n  servers: ["127.0.0.1"]\ncache:\n  store: memory\n`,
    );
    const child = spawn(process.execPath, ['--import', PRELOAD, BIN, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
    for (let i = 0; i < 200 && !out.includes('"msg":"mta-sts-sidecar ready"'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('"msg":"mta-sts-sidecar ready"');
    if (expected) {
      const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
      expect(res.status).toBe(200);
      await res.text();
    }
    child.kill('SIGTERM');
    await exited;
    const line = out.split('\n').find((l) => l.startsWith('PACKAGES '));
    expect(line, out).toBeDefined();
    expect(line!.split(' ').includes('prom-client')).toBe(expected);
    expect(line!.split(' ')).not.toContain('ioredis');
    // Nothing was fetched: no HTTP client either (src/net/policy-fetch.ts loads undici at the first fetch).
    expect(line!.split(' ')).not.toContain('undici');
  });
});
