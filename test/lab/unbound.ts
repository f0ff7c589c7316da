/**
 * A real validating resolver (Unbound, Debian package `unbound`) on <address>:53, for the DANE tests.
 * It knows one authority, the lab's NSD, as the server of the root zone (a stub zone for "."), and one
 * trust anchor, the lab root's key: so it validates the lab's signed zones exactly as a resolver on the
 * Internet validates the real ones, and never sends a query off loopback.
 *
 * Bogus data (bad or expired signatures, a DS that matches no key) comes back as SERVFAIL; insecure data
 * (below a delegation without DS) without AD; authenticated data with AD (RFC 4035 §3.2.3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureDnsClient } from '../../src/net/secure-dns.js';
import { assertLoopback } from './loopback.js';
import { alive, descendants } from './processes.js';

const UNBOUND = process.env.LAB_UNBOUND_BIN ?? ['/usr/sbin/unbound', '/sbin/unbound'].find((p) => existsSync(p)) ?? 'unbound';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export interface Unbound {
  readonly address: string;
  /** Unbound's log so far (validation failures are logged with their reason at val-log-level 2). */
  log(): string;
  stop(): Promise<void>;
}

export interface StartUnboundOptions {
  address: string;
  /** The lab NSD serving the root zone. */
  authority: string;
  /** The root trust anchor, one DS or DNSKEY record in presentation form (`. DS 12345 13 2 ...`). */
  trustAnchor: string;
  startTimeoutMs?: number;
}

export async function startUnbound(opts: StartUnboundOptions): Promise<Unbound> {
  assertLoopback(opts.address);
  assertLoopback(opts.authority);
  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-lab-unbound-'));
  const q = (s: string) => JSON.stringify(s);
  const conf = [
    'server:',
    `  interface: ${opts.address}`,
    '  port: 53',
    '  do-ip6: no',
    '  do-daemonize: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: ${q(dir)}`,
    `  pidfile: ${q(join(dir, 'unbound.pid'))}`,
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 1',
    '  val-log-level: 2',
    '  log-servfail: yes',
    '  num-threads: 1',
    '  so-reuseport: no',
    '  access-control: 127.0.0.0/8 allow',
    // The lab's authority is on loopback, which Unbound by default refuses to ask.
    '  do-not-query-localhost: no',
    '  qname-minimisation: no',
    '  aggressive-nsec: no',
    '  prefetch: no',
    '  cache-max-ttl: 0',
    '  cache-max-negative-ttl: 0',
    '  module-config: "validator iterator"',
    `  trust-anchor: ${q(opts.trustAnchor)}`,
    // RFC 6761 names (test., invalid.) are local zones in Unbound by default; the lab's zones live there.
    '  local-zone: "test." nodefault',
    '  local-zone: "invalid." nodefault',
    'remote-control:',
    '  control-enable: no',
    'stub-zone:',
    '  name: "."',
    `  stub-addr: ${opts.authority}`,
  ].join('\n');
  await writeFile(join(dir, 'unbound.conf'), conf + '\n');

  let log = '';
  const append = (chunk: Buffer) => {
    log += chunk.toString('utf8');
    if (log.length > 400_000) log = log.slice(-200_000);
  };
  const args = ['-d', '-c', join(dir, 'unbound.conf')];
  const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', UNBOUND, ...args]] : [UNBOUND, args];
  const child: ChildProcess = spawn(cmd, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const spawnFailed = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject(new Error(`lab unbound: cannot run ${UNBOUND} (${(err as NodeJS.ErrnoException).code}); install the Debian package unbound (scripts/system-deps.sh)`))),
  );
  spawnFailed.catch(() => {});

  const stop = async () => {
    const kids = child.pid !== undefined ? descendants(child.pid) : [];
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const k of kids) if (alive(k)) process.kill(k.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };

  // Ready once the lab root's SOA comes back authenticated: the trust anchor and the stub both work.
  const client = createSecureDnsClient({ servers: [opts.address], timeoutMs: 300, tries: 1 });
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  let last = 'no attempt';
  try {
    for (let i = 0; i < 500 && Date.now() < deadline; i++) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`lab unbound exited during start:\n${log}`);
      try {
        const r = await Promise.race([client.query('.', 'SOA'), spawnFailed]);
        if (r.rcode === 'NOERROR' && r.authenticated) {
          return { address: opts.address, log: () => log, stop };
        }
        last = `${r.rcode} ad=${r.authenticated}`;
      } catch (err) {
        last = (err as Error).message;
        if (last.startsWith('lab unbound')) throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`lab unbound on ${opts.address} never validated the lab root (last: ${last}):\n${log}`);
  } catch (err) {
    await stop();
    throw err;
  }
}
