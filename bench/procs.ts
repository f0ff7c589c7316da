/**
 * The processes a bench run drives: our daemon (the built bin/mta-sts-sidecar), the bare responder,
 * postfix-mta-sts-resolver, and the native load client. Plus /proc readings (RSS, CPU, descriptors).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const BIN = join(ROOT, 'bin/mta-sts-sidecar');
export const CLIENT = join(ROOT, 'bench/.build/socketmap-load');
export const BARE = join(ROOT, 'bench/bare-responder.mjs');
export const PY_DAEMON = ['/usr/bin/mta-sts-daemon', '/usr/local/bin/mta-sts-daemon'].find((p) => existsSync(p));

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/* ------------------------------------------------------------------ /proc */

export interface ProcStatus {
  rssKiB: number;
  peakRssKiB: number;
}

export function procStatus(pid: number): ProcStatus {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), peakRssKiB: field('VmHWM') };
}

/** User + system CPU seconds of a process (all its threads) so far. */
export function cpuSeconds(pid: number): number {
  const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

export function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** TCP connections in this network namespace from anywhere to address:port that are connecting or open. */
export function tcpConnectionsTo(address: string, port: number): number {
  const hex = address
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0').toUpperCase())
    .reverse()
    .join('');
  const want = `${hex}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // f[2] = rem_address, f[3] = st: 01 ESTABLISHED, 02 SYN_SENT
    if (f[2] === want && (f[3] === '01' || f[3] === '02')) n++;
  }
  return n;
}

/* ------------------------------------------------------------------ helpers */

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, host, ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

/** Resolves once something accepts on host:port (polling every 10 ms), or rejects after timeoutMs. */
export async function waitForPort(host: string, port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
    if (!alive()) throw new Error(`process exited before listening on ${host}:${port}`);
    const ok = await new Promise<boolean>((done) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        done(true);
      });
      s.once('error', () => done(false));
    });
    if (ok) return;
    await sleep(10);
  }
  throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
}

/** One socketmap query over a fresh connection (runner-side checks, not measurements). */
export function queryOnce(port: number, request: string, timeoutMs = 15_000, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no reply to "${request}" within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => s.write(`${Buffer.byteLength(request)}:${request},`));
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const colon = buf.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(buf.subarray(0, colon).toString('latin1'));
      if (buf.length < colon + 2 + len) return;
      clearTimeout(timer);
      s.destroy();
      resolve(buf.subarray(colon + 1, colon + 1 + len).toString('utf8'));
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/* ------------------------------------------------------------------ servers */

export interface Server {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly process: ChildProcess;
  /** When the process was spawned (Date.now()). */
  readonly spawnedAt: number;
  output(): string;
  /** Resolves when `text` appears in the output (or rejects after timeoutMs). */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  alive(): boolean;
  stop(): Promise<void>;
}

function track(name: string, child: ChildProcess, port: number, cleanup: () => Promise<void>): Server {
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (b: Buffer) => {
    out += b.toString();
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
    for (const l of listeners) l();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    pid: child.pid!,
    port,
    process: child,
    spawnedAt: Date.now(),
    output: () => out,
    alive,
    waitFor(text, timeoutMs = READY_TIMEOUT_MS) {
      return new Promise<void>((ok, fail) => {
        const check = () => {
          if (out.includes(text)) {
            done();
            ok();
          } else if (!alive()) {
            done();
            fail(new Error(`${name} exited before "${text}":\n${out.slice(-4000)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          fail(new Error(`${name}: no "${text}" after ${timeoutMs} ms:\n${out.slice(-4000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
          clearInterval(poll);
        };
        const poll = setInterval(check, 50);
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (alive()) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      await cleanup();
    },
  };
}

export interface SidecarOptions {
  store: 'sqlite' | 'memory';
  /** sqlite file; default a fresh one in the daemon's temp dir. */
  dbPath?: string;
  dnsAddress: string;
  caFile: string;
  memoryEntries?: number;
  /** Extra arguments for node before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Wait for the "ready" log line (default true). */
  waitReady?: boolean;
  /** Another checkout's bin/mta-sts-sidecar (A/B comparisons); default this checkout's. */
  bin?: string;
  /** Serve /metrics on a port of its own (Server.httpPort); default off (`http.listen: []`). */
  metrics?: boolean;
}

let defaultBin = BIN;
/** Every later startSidecar() runs this build of the daemon unless told otherwise (A/B comparisons). */
export function useSidecarBin(bin: string): void {
  defaultBin = bin;
}

export async function startSidecar(options: SidecarOptions): Promise<Server & { httpPort: number | undefined; configFile: string }> {
  const bin = options.bin ?? defaultBin;
  if (!existsSync(join(bin, '../../dist/cli/main.js'))) throw new Error(`dist/ is missing beside ${bin}: run \`npm run build\` first`);
  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-bench-sidecar-'));
  const port = await freePort();
  const httpPort = options.metrics ? await freePort() : undefined;
  const config = [
    'socketmap:',
    `  listen: ["tcp:127.0.0.1:${port}"]`,
    'http:',
    httpPort === undefined ? '  listen: []' : `  listen: ["tcp:127.0.0.1:${httpPort}"]`,
    'dns:',
    `  servers: ["${options.dnsAddress}"]`,
    'fetch:',
    `  ca_file: "${options.caFile}"`,
    '  allow_private_addresses: true',
    'cache:',
    `  store: ${options.store}`,
    `  path: "${options.dbPath ?? join(dir, 'cache.db')}"`,
    // Room for every policy in the hot tier and the store: their byte bounds (64 MiB and 256 MiB by default;
    // entryBytes() estimates about 1.1 KB per bench policy) would cut the warm load short.
    ...(options.memoryEntries
      ? [`  memory_max_bytes: ${Math.max(64 * 1024 * 1024, options.memoryEntries * 2048)}`, `  store_max_bytes: ${Math.max(256 * 1024 * 1024, options.memoryEntries * 2048)}`]
      : []),
    ...(options.memoryEntries ? ['resolver:', `  memory_entries: ${options.memoryEntries}`] : []),
    'log:',
    '  level: info',
    '',
  ].join('\n');
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, config);
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), bin, 'serve', '--config', configFile], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = track(`sidecar-${options.store}`, child, port, () => rm(dir, { recursive: true, force: true }));
  if (options.waitReady !== false) await server.waitFor('"msg":"mta-sts-sidecar ready"');
  return Object.assign(server, { httpPort, configFile });
}

export async function startBare(reply: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [BARE, '127.0.0.1', String(port), reply], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = track('bare', child, port, async () => {});
  await server.waitFor(`listening ${port}`);
  return server;
}

export interface ResolverOptions {
  cache: 'internal' | 'sqlite';
  caBundleFile: string;
}

/**
 * postfix-mta-sts-resolver (`mta-sts-daemon`). It resolves through /etc/resolv.conf (inside the bench
 * network namespace: the lab NSD) and trusts OpenSSL's default roots, which SSL_CERT_FILE points at a
 * bundle of the system roots plus the lab CA, for this process only.
 */
export async function startResolver(options: ResolverOptions): Promise<Server> {
  if (!PY_DAEMON) throw new Error('mta-sts-daemon not found (apt-get install postfix-mta-sts-resolver)');
  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-bench-resolver-'));
  const port = await freePort();
  const cache =
    options.cache === 'internal'
      ? ['  type: internal', '  options:', '    cache_size: 10000']
      : ['  type: sqlite', '  options:', `    filename: "${join(dir, 'cache.db')}"`];
  const config = [
    'host: 127.0.0.1',
    `port: ${port}`,
    'reuse_port: true',
    'shutdown_timeout: 2',
    // Its default (60 s) re-resolves a cached domain in the request path once a minute; a long grace
    // keeps every measured query on its cached path, as ours are.
    'cache_grace: 3600',
    'cache:',
    ...cache,
    'default_zone:',
    '  strict_testing: false',
    '  timeout: 4',
    '',
  ].join('\n');
  await writeFile(join(dir, 'conf.yml'), config);
  const child = spawn(PY_DAEMON, ['-c', join(dir, 'conf.yml')], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SSL_CERT_FILE: options.caBundleFile },
  });
  const server = track(`resolver-${options.cache}`, child, port, () => rm(dir, { recursive: true, force: true }));
  await waitForPort('127.0.0.1', port, READY_TIMEOUT_MS, server.alive);
  return server;
}

export function resolverVersion(): string | null {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'postfix-mta-sts-resolver'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/* ------------------------------------------------------------------ the load client */

export interface ClientArgs {
  port: number;
  connections: number;
  depth?: number;
  durationS?: number;
  warmupS?: number;
  name?: string;
  key?: string;
  keyFormat?: string;
  keys?: number;
  random?: boolean;
  once?: boolean;
  timeoutS?: number;
  expect?: string;
}

export interface ClientResult {
  connections: number;
  depth: number;
  mode: string;
  seconds: number;
  queries: number;
  qps: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
  replies: { ok: number; notfound: number; perm: number; temp: number; other: number };
  unexpected: number;
  unanswered: number;
  connection_errors: number;
  protocol_errors: number;
  client_cpu_s: number;
  client_cpu_pct: number;
  /** Server CPU over the measured window, % of one core (sampled by the runner). */
  server_cpu_pct?: number;
}

export async function runClient(args: ClientArgs, serverPid?: number): Promise<ClientResult> {
  if (!existsSync(CLIENT)) throw new Error(`${CLIENT} is missing: bench/run.sh builds it with cc`);
  const argv = ['--port', String(args.port), '--connections', String(args.connections)];
  if (args.depth) argv.push('--depth', String(args.depth));
  if (args.durationS !== undefined) argv.push('--duration', String(args.durationS));
  if (args.warmupS !== undefined) argv.push('--warmup', String(args.warmupS));
  if (args.name) argv.push('--name', args.name);
  if (args.key) argv.push('--key', args.key);
  if (args.keyFormat) argv.push('--key-format', args.keyFormat, '--keys', String(args.keys ?? 1));
  if (args.random) argv.push('--random');
  if (args.once) argv.push('--once');
  if (args.timeoutS !== undefined) argv.push('--timeout', String(args.timeoutS));
  if (args.expect) argv.push('--expect', args.expect);
  const child = spawn(CLIENT, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  // Server CPU over the same window as the client's (approximately: both start now).
  let cpuStart: number | undefined;
  let cpuEnd: number | undefined;
  const timers: NodeJS.Timeout[] = [];
  if (serverPid !== undefined && !args.once) {
    const warm = (args.warmupS ?? 1) * 1000;
    const dur = (args.durationS ?? 5) * 1000;
    timers.push(setTimeout(() => (cpuStart = safeCpu(serverPid)), warm));
    timers.push(setTimeout(() => (cpuEnd = safeCpu(serverPid)), warm + dur));
  }
  // 'close', not 'exit': a child can exit before its stdout has been read to the end (seen once in
  // scenario 7, five clients at once: an empty result).
  const code = await new Promise<number | null>((ok) => child.once('close', (c) => ok(c)));
  for (const t of timers) clearTimeout(t);
  if (code !== 0) throw new Error(`socketmap-load exited ${code}: ${err}`);
  const result = JSON.parse(out) as ClientResult;
  if (cpuStart !== undefined && cpuEnd !== undefined) {
    result.server_cpu_pct = Math.round((1000 * (cpuEnd - cpuStart)) / (args.durationS ?? 5)) / 10;
  }
  return result;
}

function safeCpu(pid: number): number | undefined {
  try {
    return cpuSeconds(pid);
  } catch {
    return undefined;
  }
}
