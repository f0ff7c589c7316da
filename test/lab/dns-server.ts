/**
 * A real authoritative DNS server (NSD, Debian package `nsd`) on <address>:53,
 * serving zones described declaratively. Plus a "blackhole" DNS endpoint that
 * accepts queries and never answers.
 *
 * Behaviour as seen through node:dns (verified against NSD 4.6):
 *   name missing in a served zone          -> ENOTFOUND (NXDOMAIN)
 *   name exists, no record of that type    -> ENODATA   (NOERROR/NODATA)
 *   any name in a zone with servfail: true -> ESERVFAIL (zone configured but
 *                                             its file has no SOA, so NSD
 *                                             refuses to load it)
 *   name outside every configured zone     -> EREFUSED
 * CNAMEs inside the served zones are chased by NSD itself (the answer holds
 * the CNAME and the target's records), so resolveTxt(alias) returns the
 * target's TXT.
 *
 * Records default to TTL 0 and the SOA minimum (negative TTL) is 0, so no
 * resolver caches lab answers across a reload().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertLoopback } from './loopback.js';
import { alive, descendants } from './processes.js';

export type DnsRecord =
  | { name: string; type: 'TXT'; value: string | string[]; ttl?: number }
  | {
      name: string;
      /** A, AAAA, CNAME, MX ("10 mx1.example.test."), NS, or any other type with raw zone-file rdata. */
      type: 'A' | 'AAAA' | 'CNAME' | 'MX' | 'NS' | (string & {});
      value: string;
      ttl?: number;
    };

export interface ZoneSpec {
  /** Owner names are relative to the zone ('@' = apex) or absolute with a trailing dot. */
  records?: DnsRecord[];
  /** Serve SERVFAIL for every name in this zone. */
  servfail?: boolean;
  /** A whole zone file used as it is instead of `records` (e.g. one signed by test/lab/dnssec-lab.ts). */
  text?: string;
}

/** Zone apex (e.g. 'example.test') -> zone content. */
export type Zones = Record<string, ZoneSpec>;

export interface DnsServer {
  readonly address: string;
  readonly port: 53;
  /** Replace all zones (restarts NSD on the same address; resolves once it answers). */
  reload(zones: Zones): Promise<void>;
  /** Kill NSD, wait for it to exit, remove its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** NSD's stderr so far (for debugging failed tests). */
  log(): string;
}

export interface StartDnsServerOptions {
  address: string;
  zones: Zones;
  /** Max time to wait for NSD to answer after (re)start. Default 10 s. */
  startTimeoutMs?: number;
  /** NSD verbosity (0..5). Default 1. */
  verbosity?: number;
}

const NSD = process.env.LAB_NSD_BIN ?? 'nsd';
/**
 * util-linux `setpriv --pdeathsig TERM` makes the kernel stop NSD if the test
 * process dies without calling stop() (e.g. a killed vitest worker), so no
 * orphan keeps port 53 of a lab address. It execs, so the pid stays NSD's.
 */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/* ------------------------------------------------------------------ zone files */

function normaliseZone(zone: string): string {
  // The root zone: the DNSSEC lab serves its own signed root, so its resolver never leaves loopback.
  if (zone.trim() === '.') return '.';
  const z = zone.trim().toLowerCase().replace(/\.$/, '');
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(z)) throw new Error(`lab dns: bad zone name ${JSON.stringify(zone)}`);
  return z;
}

function ownerName(name: string, zone: string): string {
  const n = name.trim();
  if (n === '' || n === '@') return '@';
  if (!/^[A-Za-z0-9_*.-]+$/.test(n)) throw new Error(`lab dns: bad owner name ${JSON.stringify(name)} in ${zone}`);
  if (n.endsWith('.')) {
    const abs = n.toLowerCase();
    if (abs !== `${zone}.` && !abs.endsWith(`.${zone}.`)) {
      throw new Error(`lab dns: owner ${name} is outside zone ${zone}`);
    }
  }
  return n;
}

/** One TXT character-string in zone-file syntax: quoted, with ", \ and non-printable bytes escaped. */
export function quoteCharacterString(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length > 255) {
    throw new Error(`lab dns: TXT character-string is ${bytes.length} bytes (max 255): split it into several strings`);
  }
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) out += '\\' + String.fromCharCode(b);
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += '\\' + String(b).padStart(3, '0');
  }
  return out + '"';
}

function rdata(rec: DnsRecord, zone: string): string {
  if (rec.type.toUpperCase() === 'TXT') {
    const v = rec.value;
    const strings = typeof v === 'string' ? [v] : v;
    if (strings.length === 0) throw new Error(`lab dns: TXT ${rec.name} in ${zone} needs at least one string`);
    return strings.map(quoteCharacterString).join(' ');
  }
  const v = rec.value;
  if (typeof v !== 'string' || /[\n\r;()]/.test(v)) {
    throw new Error(`lab dns: bad ${rec.type} value ${JSON.stringify(v)} for ${rec.name} in ${zone}`);
  }
  return v;
}

/** The zone's file in the server's directory ('.' has no name of its own). */
function zoneFileName(z: string): string {
  return z === '.' ? 'root.zone' : `${z}.zone`;
}

export function renderZoneFile(zone: string, spec: ZoneSpec): string {
  const z = normaliseZone(zone);
  if (spec.text !== undefined) return spec.text;
  if (spec.servfail) {
    // No SOA: NSD logs "zone configured as '<z>' has no SOA record", does not
    // load the zone and answers SERVFAIL for every name in it.
    return `; lab: deliberately broken zone (no SOA) -> SERVFAIL\n$ORIGIN ${z}.\n`;
  }
  const lines = [
    `$ORIGIN ${z}.`,
    `$TTL 0`,
    `@ 0 IN SOA ns.lab.invalid. hostmaster.lab.invalid. 1 3600 600 86400 0`,
    `@ 0 IN NS ns.lab.invalid.`,
  ];
  for (const rec of spec.records ?? []) {
    const type = rec.type.toUpperCase();
    if (!/^[A-Z0-9]+$/.test(type) || type === 'SOA') throw new Error(`lab dns: unsupported type ${rec.type}`);
    const ttl = rec.ttl ?? 0;
    if (!Number.isInteger(ttl) || ttl < 0) throw new Error(`lab dns: bad ttl ${ttl}`);
    lines.push(`${ownerName(rec.name, z)} ${ttl} IN ${type} ${rdata(rec, z)}`);
  }
  return lines.join('\n') + '\n';
}

function renderConf(dir: string, address: string, zones: string[], verbosity: number): string {
  const q = (s: string) => JSON.stringify(s);
  const out = [
    'server:',
    `  ip-address: ${address}`,
    '  port: 53',
    '  do-ip4: yes',
    '  do-ip6: no',
    '  username: ""',
    '  chroot: ""',
    `  zonesdir: ${q(dir)}`,
    `  pidfile: ${q(join(dir, 'nsd.pid'))}`,
    '  database: ""',
    `  zonelistfile: ${q(join(dir, 'zone.list'))}`,
    `  xfrdfile: ${q(join(dir, 'xfrd.state'))}`,
    `  xfrdir: ${q(dir)}`,
    `  verbosity: ${verbosity}`,
    '  server-count: 1',
    '  hide-version: yes',
    '  identity: "lab"',
    '  refuse-any: yes',
    'remote-control:',
    '  control-enable: no',
  ];
  for (const z of zones) {
    out.push('zone:', `  name: ${q(z)}`, `  zonefile: ${q(join(dir, zoneFileName(z)))}`);
  }
  return out.join('\n') + '\n';
}

/* ------------------------------------------------------------------ process control */

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(t);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

async function killChild(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  const kids = pid !== undefined ? descendants(pid) : [];
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 3000))) {
      child.kill('SIGKILL');
      await waitExit(child, 3000);
    }
  }
  // NSD's main process stops its children; make sure they are gone (bounded).
  for (let i = 0; i < 50 && kids.some(alive); i++) await sleep(20);
  for (const k of kids) {
    if (alive(k)) {
      try {
        process.kill(k.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/* ------------------------------------------------------------------ start */

export async function startDnsServer(opts: StartDnsServerOptions): Promise<DnsServer> {
  const { address } = opts;
  assertLoopback(address);
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const verbosity = opts.verbosity ?? 1;
  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-lab-nsd-'));
  let child: ChildProcess | null = null;
  let stderr = '';
  let stopped = false;

  const appendLog = (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  };

  async function writeZones(zones: Zones): Promise<{ names: string[]; probe: string[] }> {
    const names: string[] = [];
    const probe: string[] = [];
    for (const [zone, spec] of Object.entries(zones)) {
      const z = normaliseZone(zone);
      if (names.includes(z)) throw new Error(`lab dns: zone ${z} given twice`);
      names.push(z);
      if (!spec.servfail) probe.push(z);
      await writeFile(join(dir, zoneFileName(z)), renderZoneFile(z, spec));
    }
    await writeFile(join(dir, 'nsd.conf'), renderConf(dir, address, names, verbosity));
    return { names, probe };
  }

  async function waitReady(probe: string[], proc: ChildProcess): Promise<void> {
    const resolver = new Resolver({ timeout: 200, tries: 1 });
    resolver.setServers([address]);
    const deadline = Date.now() + startTimeoutMs;
    let last = 'no attempt';
    for (let i = 0; i < 500 && Date.now() < deadline; i++) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(
          `lab dns: nsd exited (${proc.exitCode ?? proc.signalCode}) during start ` +
            `(is the Debian package nsd installed? see scripts/system-deps.sh):\n${stderr}`,
        );
      }
      try {
        if (probe.length === 0) {
          // Nothing loadable: any DNS answer (REFUSED/SERVFAIL) proves NSD is up.
          await resolver.resolveSoa('lab-probe.invalid');
          return;
        }
        for (const z of probe) await resolver.resolveSoa(z);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        last = code;
        if (probe.length === 0 && (code === 'EREFUSED' || code === 'ESERVFAIL' || code === 'ENOTFOUND')) return;
      }
      await sleep(20);
    }
    resolver.cancel();
    throw new Error(`lab dns: nsd on ${address}:53 not answering after ${startTimeoutMs} ms (last: ${last}):\n${stderr}`);
  }

  async function launch(zones: Zones): Promise<void> {
    const { probe } = await writeZones(zones);
    const nsdArgs = ['-d', '-c', join(dir, 'nsd.conf')];
    const [cmd, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', NSD, ...nsdArgs]] : [NSD, nsdArgs];
    const proc = spawn(cmd, args, {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout?.on('data', appendLog);
    proc.stderr?.on('data', appendLog);
    const spawnError = new Promise<never>((_, reject) => {
      proc.once('error', (err) =>
        reject(
          new Error(
            `lab dns: cannot run ${NSD} (${(err as NodeJS.ErrnoException).code}); install the Debian package nsd ` +
              `(scripts/system-deps.sh)`,
          ),
        ),
      );
    });
    spawnError.catch(() => {});
    try {
      await Promise.race([waitReady(probe, proc), spawnError]);
    } catch (err) {
      await killChild(proc);
      child = null;
      throw err;
    }
  }

  async function halt(): Promise<void> {
    const c = child;
    child = null;
    if (c) await killChild(c);
  }

  try {
    await launch(opts.zones);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    address,
    port: 53,
    log: () => stderr,
    async reload(zones: Zones) {
      if (stopped) throw new Error('lab dns: reload() after stop()');
      await halt();
      await launch(zones);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/* ------------------------------------------------------------------ blackhole */

export interface BlackholeDns {
  readonly address: string;
  /** Number of queries received (UDP datagrams + TCP connections). */
  queries(): number;
  stop(): Promise<void>;
}

/** UDP+TCP listener on <address>:53 that reads queries and never answers. */
export async function startBlackholeDns(address: string): Promise<BlackholeDns> {
  assertLoopback(address);
  let count = 0;
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', () => {
    count++;
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind({ address, port: 53, exclusive: true }, () => {
      udp.off('error', reject);
      resolve();
    });
  });
  udp.on('error', () => {});

  const sockets = new Set<Socket>();
  const tcp: Server = createServer((sock) => {
    count++;
    sockets.add(sock);
    sock.on('data', () => {}); // read and discard
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: address, port: 53, exclusive: true }, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    udp.close();
    throw err;
  }

  let stopped = false;
  return {
    address,
    queries: () => count,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => tcp.close(() => r())),
        new Promise<void>((r) => udp.close(() => r())),
      ]);
    },
  };
}
