/**
 * Loopback address allocation for lab "worlds".
 *
 * Every world (DNS server on :53, policy server on :443, ...) gets its own
 * address in 127.0.0.0/8 so that parallel vitest workers never collide on
 * ports. Linux routes the whole of 127/8 to `lo`, so any 127.a.b.c can be
 * bound without configuring anything.
 *
 * Candidates are derived from the process id and a per-process counter
 * (never 127.0.x.x, so never 127.0.0.1 / 127.0.0.53, never 127.255.255.255).
 * A candidate is taken only if
 *   - a reservation file can be created for it (O_EXCL) in a shared lock
 *     directory, or the existing reservation belongs to a process that is
 *     dead (stale), and
 *   - port 53 (udp+tcp) and 443 (tcp) are free on it right now.
 * The reservation makes allocation race-free across concurrently running
 * test processes; `releaseLoopback()` drops it (stale ones are reclaimed).
 */
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK_DIR = join(tmpdir(), 'mta-sts-lab-loopback');
const MAX_ATTEMPTS = 64;

let counter = 0;
const held = new Set<string>();

/** True for 127.0.0.0/8 addresses. */
export function isLoopback(address: string): boolean {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

/** Throws unless `address` is in 127.0.0.0/8: the lab never talks to anything else. */
export function assertLoopback(address: string): void {
  if (!isLoopback(address)) {
    throw new Error(`lab: refusing non-loopback address ${JSON.stringify(address)}`);
  }
}

function candidate(pid: number, n: number): string {
  // 16 low bits of the pid in the last two octets; counter and the high pid
  // bits in the second octet, kept in 10..249.
  const a = 10 + ((n + (pid >>> 16) * 37) % 240);
  const b = (pid >>> 8) & 0xff;
  const c = pid & 0xff;
  return `127.${a}.${b}.${c}`;
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function reserve(address: string): boolean {
  mkdirSync(LOCK_DIR, { recursive: true });
  const file = join(LOCK_DIR, address);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(file, 'utf8').trim());
      } catch {
        /* vanished meanwhile: retry */
      }
      // Same pid but not held by us = a recycled pid left it behind.
      const stale = owner === process.pid ? !held.has(address) : !pidAlive(owner);
      if (!stale) return false;
      try {
        unlinkSync(file);
      } catch {
        /* someone else reclaimed it first */
      }
    }
  }
  return false;
}

function unreserve(address: string): void {
  try {
    const owner = Number(readFileSync(join(LOCK_DIR, address), 'utf8').trim());
    if (owner === process.pid) unlinkSync(join(LOCK_DIR, address));
  } catch {
    /* already gone */
  }
}

function probeTcp(address: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err) => resolve(err as NodeJS.ErrnoException));
    srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

function probeUdp(address: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.once('error', (err) => {
      sock.close();
      resolve(err as NodeJS.ErrnoException);
    });
    sock.bind({ address, port, exclusive: true }, () => sock.close(() => resolve(null)));
  });
}

/**
 * Checks that `address` can be bound (and, when `ports` are given, that those
 * ports are free on it). Resolves to null when usable, else the bind error.
 */
export async function probeAddress(
  address: string,
  ports: { tcp?: number[]; udp?: number[] } = {},
): Promise<NodeJS.ErrnoException | null> {
  assertLoopback(address);
  const base = await probeTcp(address, 0);
  if (base) return base;
  for (const p of ports.tcp ?? []) {
    const e = await probeTcp(address, p);
    if (e) return e;
  }
  for (const p of ports.udp ?? []) {
    const e = await probeUdp(address, p);
    if (e) return e;
  }
  return null;
}

/**
 * Allocates a fresh loopback address for one test world, with tcp/53,
 * udp/53 and tcp/443 free on it. Call `releaseLoopback(address)` when the
 * world is torn down (optional: reservations of dead processes are reclaimed).
 */
export async function allocateLoopback(): Promise<string> {
  let lastErr: NodeJS.ErrnoException | null = null;
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const address = candidate(process.pid, counter++);
    if (held.has(address) || !reserve(address)) continue;
    const err = await probeAddress(address, { tcp: [53, 443], udp: [53] });
    if (!err) {
      held.add(address);
      return address;
    }
    unreserve(address);
    lastErr = err;
    if (err.code === 'EADDRNOTAVAIL') {
      throw new Error(
        `lab: cannot bind ${address} (${err.code}); 127.0.0.0/8 must be routed to lo ` +
          `(try: ip addr add 127.0.0.0/8 dev lo)`,
      );
    }
    if (err.code === 'EACCES') {
      throw new Error(
        `lab: binding port 53/443 on ${address} needs root or CAP_NET_BIND_SERVICE ` +
          `(or sysctl net.ipv4.ip_unprivileged_port_start=0)`,
      );
    }
  }
  throw new Error(
    `lab: no free loopback address after ${MAX_ATTEMPTS} attempts (last error: ${lastErr?.code ?? 'reserved'})`,
  );
}

/** Drops the reservation made by allocateLoopback(). Idempotent. */
export function releaseLoopback(address: string): void {
  if (!held.delete(address)) return;
  unreserve(address);
}
