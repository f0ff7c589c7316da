/**
 * A real PostgreSQL for tests: a private cluster made with Debian's `initdb` in a temporary directory,
 * `postgres` itself listening on 127.0.0.1 on a free port (no Unix socket outside that directory), with
 * a password (scram-sha-256) for TCP logins so the password-file path is exercised. Durability is turned
 * off (fsync, synchronous_commit, full_page_writes): these clusters live for one test file.
 *
 * initdb and postgres refuse to run as root: as root the lab runs them as the `postgres` user (Debian's
 * package creates it), otherwise as the current user. The server is our own child process (not `pg_ctl`,
 * which daemonizes), so stop()/restart() act on it directly.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { childrenOf } from './processes.js';

export interface PostgresLab {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: 'postgres';
  /** `postgres://<user>@127.0.0.1:<port>/postgres` (no password: it is in `passwordFile`). */
  readonly url: string;
  /** A file holding the password and a newline, readable by the test process. */
  readonly passwordFile: string;
  /** Stop the server (fast shutdown, SIGKILL after a bounded wait); the port and data stay for restart(). */
  stop(): Promise<void>;
  /** Start it again on the same port with the same data. */
  restart(): Promise<void>;
  /**
   * SIGSTOP the server and every backend: connections stay open but nothing is answered (a hung
   * database or a black-holed network). New logins hang in the listen backlog.
   */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** stop() and remove the directory. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const USER = 'sidecar';
const PASSWORD = 'lab-password-not-secret';
const MISSING = 'PostgreSQL server binaries not found: install them with `apt-get install -y postgresql`';
const PORT_ATTEMPTS = 5;
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin; newest first. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) {
    const dir = join(root, major, 'bin');
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'))) return dir;
  }
  throw new Error(MISSING);
}

/** The uid/gid to run as: initdb refuses root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error('running as root and there is no `postgres` user to run initdb as: ' + MISSING);
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export async function startPostgres(): Promise<PostgresLab> {
  const bin = postgresBinDir();
  const as = runAs();
  // The postgres user must reach the directory: a root TMPDIR such as /root/tmp would be closed to it.
  const dir = mkdtempSync(join(as ? '/tmp' : tmpdir(), 'mta-sts-postgres-'));
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, PASSWORD + '\n', { mode: 0o600 });
  if (as) {
    chownSync(dir, as.uid, as.gid);
    chownSync(pwfile, as.uid, as.gid);
  }
  // The test process (root or not) reads its own copy of the password.
  const passwordFile = join(dir, 'client-password');
  writeFileSync(passwordFile, PASSWORD + '\n', { mode: 0o600 });
  if (as) chmodSync(dir, 0o755);

  const init = spawnSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', USER, `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'],
    { encoding: 'utf8', ...as, timeout: 60_000 },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status ?? init.signal}): ${init.stderr || init.error?.message}`);
  }

  let child: ChildProcess | null = null;
  let port = 0;
  let lastError: unknown = null;
  for (let attempt = 1; attempt <= PORT_ATTEMPTS && child === null; attempt++) {
    port = await freePort();
    try {
      child = await spawnPostgres(bin, data, dir, port, as);
    } catch (err) {
      lastError = err;
    }
  }
  if (child === null) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postgres did not start after ${PORT_ATTEMPTS} attempts`, { cause: lastError });
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
    user: USER,
    password: PASSWORD,
    database: 'postgres',
    url: `postgres://${USER}@${HOST}:${port}/postgres`,
    passwordFile,
    stop,
    async restart() {
      await stop();
      child = await spawnPostgres(bin, data, dir, port, as);
    },
    freeze() {
      if (child?.pid === undefined) throw new Error('postgres is not running');
      // Children first, so the postmaster does not see them stop and react.
      for (const pid of childrenOf(child.pid)) process.kill(pid, 'SIGSTOP');
      process.kill(child.pid, 'SIGSTOP');
    },
    thaw() {
      if (child?.pid === undefined) throw new Error('postgres is not running');
      process.kill(child.pid, 'SIGCONT');
      for (const pid of childrenOf(child.pid)) process.kill(pid, 'SIGCONT');
    },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function spawnPostgres(bin: string, data: string, dir: string, port: number, as: { uid: number; gid: number } | undefined): Promise<ChildProcess> {
  const child = spawn(
    join(bin, 'postgres'),
    [
      '-D', data,
      '-h', HOST,
      '-p', String(port),
      '-k', dir, // the Unix socket stays in our directory
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=50',
      '-c', 'shared_buffers=16MB',
      '-c', 'logging_collector=off',
      '-c', 'log_min_messages=warning',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], ...as },
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

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`postgres on port ${port} ${exited}: ${output.trim()}`);
    if (await accepts(port)) return child;
    await sleep(50);
  }
  await terminate(child);
  throw new Error(`postgres on port ${port} did not accept a login within ${READY_TIMEOUT_MS} ms: ${output.trim()}`);
}

/** One login and `SELECT 1`, bounded to 1 s. */
async function accepts(port: number): Promise<boolean> {
  const client = new pg.Client({ host: HOST, port, user: USER, password: PASSWORD, database: 'postgres', connectionTimeoutMillis: 1_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

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

/** SIGINT is PostgreSQL's "fast shutdown": open sessions are ended, nothing waits for clients. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT');
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

