/**
 * A real redis-server on 127.0.0.1 for tests: no persistence, its own temporary directory, a free port that
 * survives stop()/restart() so a client can watch the server go away and come back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface RedisLab {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:<port>/0` */
  readonly url: string;
  /** Stop the server (SIGTERM, then SIGKILL after a bounded wait). The port stays ours for restart(). */
  stop(): Promise<void>;
  /** Start it again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered (a hung server or a black-holed network). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** stop() and remove the temporary directory. */
  close(): Promise<void>;
}

export interface RedisLabOptions {
  /** How long to wait for PONG after spawning. Default 10 s. */
  readyTimeoutMs?: number;
  /** `redis-sentinel` for a Sentinel (test/lab/redis-sentinel.ts). Default `redis-server`. */
  binary?: 'redis-server' | 'redis-sentinel';
  /**
   * Written to `<dir>/redis.conf` and given as the config file (a Sentinel needs one it may rewrite);
   * `{port}` is replaced by the port chosen.
   */
  config?: string;
  /** More command-line settings, after ours (`{port}` replaced too): `--replicaof`, `--cluster-enabled`, ... */
  extraArgs?: string[];
}

const HOST = '127.0.0.1';
const MISSING = 'redis-server is not on PATH: install it with `apt-get install -y redis-server`';
const PORT_ATTEMPTS = 5;
const STOP_GRACE_MS = 5_000;

/** Children still running when the test process exits are killed, so no redis-server outlives a test run. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startRedis(options: RedisLabOptions = {}): Promise<RedisLab> {
  const binary = findOnPath(options.binary ?? 'redis-server');
  const spawnOptions: SpawnOptions = { config: options.config, extraArgs: options.extraArgs ?? [] };
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), 'mta-sts-redis-'));

  let child: ChildProcess | null = null;
  let port = 0;
  let lastError: unknown = null;
  // Another process may take the port between our probe and redis binding it: try a fresh one.
  for (let attempt = 1; attempt <= PORT_ATTEMPTS && child === null; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(binary, port, dir, readyTimeoutMs, spawnOptions);
    } catch (err) {
      lastError = err;
    }
  }
  if (child === null) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`redis-server did not start after ${PORT_ATTEMPTS} attempts`, { cause: lastError });
  }

  const stop = async (): Promise<void> => {
    if (child === null) return;
    const stopping = child;
    child = null;
    await terminate(stopping);
  };
  return {
    host: HOST,
    port,
    url: `redis://${HOST}:${port}/0`,
    stop,
    async restart() {
      await stop();
      child = await spawnRedis(binary, port, dir, readyTimeoutMs, spawnOptions);
    },
    freeze() {
      if (child === null || !child.kill('SIGSTOP')) throw new Error('redis-server is not running');
    },
    thaw() {
      if (child === null || !child.kill('SIGCONT')) throw new Error('redis-server is not running');
    },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface SpawnOptions {
  config: string | undefined;
  extraArgs: string[];
}

function findOnPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(name === 'redis-server' ? MISSING : `${name} is not on PATH: install it with \`apt-get install -y ${name}\``);
}

/** A port the kernel just gave us and that nobody was listening on; redis binds it right after. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Spawn and wait for PONG; rejects (with redis's own output) if it exits or stays silent too long. */
async function spawnRedis(binary: string, port: number, dir: string, readyTimeoutMs: number, options: SpawnOptions): Promise<ChildProcess> {
  const withPort = (s: string) => s.replaceAll('{port}', String(port));
  const configFile: string[] = [];
  if (options.config !== undefined) {
    configFile.push(join(dir, `redis-${port}.conf`));
    // Only at the first start: a Sentinel rewrites its file with what it learned, and a restart keeps it.
    if (!existsSync(configFile[0]!)) writeFileSync(configFile[0]!, withPort(options.config));
  }
  const child = spawn(
    binary,
    [
      ...configFile,
      '--bind', HOST,
      '--port', String(port),
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--daemonize', 'no',
      '--logfile', '',
      '--loglevel', 'warning',
      ...options.extraArgs.map(withPort),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  const collect = (chunk: Buffer): void => {
    if (output.length < 8192) output += chunk.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);

  let exited: string | null = null;
  child.once('exit', (code, signal) => (exited = `exited (code ${code}, signal ${signal})`));
  child.once('error', (err) => (exited = `failed to spawn: ${err.message}`));

  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`redis-server on port ${port} ${exited}: ${output.trim()}`);
    if (await pong(port)) return child;
    await sleep(50);
  }
  await terminate(child);
  throw new Error(`redis-server on port ${port} did not answer PING within ${readyTimeoutMs} ms: ${output.trim()}`);
}

/** One PING over a raw socket, bounded to 1 s. */
async function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    let reply = '';
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 1_000);
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      // A server that wants a password (--requirepass) is up too.
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT'); // in case it was frozen: a stopped process would not act on SIGTERM
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
