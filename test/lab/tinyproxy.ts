/**
 * A real HTTP CONNECT proxy for tests: Debian's tinyproxy (package tinyproxy-bin) on 127.0.0.1, with its
 * own view of host names. It runs in a private mount namespace (`unshare --map-root-user --mount`, so no
 * root is needed; as root, `unshare --mount`) whose /etc/hosts is the test's `hosts`: the proxy can reach
 * a policy host at an address that our own DNS does not give, so a fetch that succeeds went through the
 * proxy. Its log lists every CONNECT (`connects()`), which the tests read too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './sidecar.js';

export interface TinyproxyLab {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The `host:port` of every CONNECT the proxy logged, oldest first. */
  connects(): string[];
  /** Everything tinyproxy wrote to its log and to stderr. */
  log(): string;
  stop(): Promise<void>;
}

const MISSING = 'tinyproxy is not on PATH: install it with `apt-get install -y tinyproxy-bin` (scripts/system-deps.sh)';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `hosts`: name -> address, the proxy's own name resolution (what /etc/hosts says inside its namespace). */
export async function startTinyproxy(hosts: Record<string, string>): Promise<TinyproxyLab> {
  const dir = mkdtempSync(join(tmpdir(), 'mta-sts-tinyproxy-'));
  const port = await freePort();
  const logFile = join(dir, 'tinyproxy.log');
  writeFileSync(
    join(dir, 'hosts'),
    ['127.0.0.1 localhost', ...Object.entries(hosts).map(([name, address]) => `${address} ${name}`)].join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'tinyproxy.conf'),
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 30',
      `LogFile "${logFile}"`,
      // Connect: one line per connection and per CONNECT request, which is what the tests count.
      'LogLevel Connect',
      `PidFile "${join(dir, 'tinyproxy.pid')}"`,
      'MaxClients 50',
      'Allow 127.0.0.0/8',
      'ConnectPort 443',
      'DisableViaHeader Yes',
    ].join('\n') + '\n',
  );
  const script = `mount --bind "$0/hosts" /etc/hosts && exec tinyproxy -d -c "$0/tinyproxy.conf"`;
  // As root a mount namespace alone will do (and works where user namespaces are switched off).
  const namespaces = process.getuid?.() === 0 ? ['--mount'] : ['--map-root-user', '--mount'];
  const child = spawn('unshare', [...namespaces, 'sh', '-c', script, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  let exited: string | null = null;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      exited = `exited (code ${code}, signal ${signal})`;
      resolve();
    }),
  );
  child.once('error', (err) => (exited = `failed to start: ${err.message}`));

  const readLog = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await listening(port))) {
    if (exited !== null || Date.now() > deadline) {
      await stop();
      const why = /not found|No such file/.test(output) ? MISSING : `tinyproxy ${exited ?? 'did not listen in time'}`;
      throw new Error(`${why}: ${output.trim()} ${readLog().trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connects: () => [...readLog().matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map((m) => m[1]!),
    log: () => `${readLog()}${output}`,
    stop,
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
