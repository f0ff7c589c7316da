/**
 * The fault suite's world: NSD (the real DNS) and the HTTPS policy server on one loopback address, a DNS
 * fault injector in front of NSD on another, and helpers to run the built daemon against them and read
 * its pino log lines.
 */
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startFaultyDns, type FaultyDns } from '../lab/faulty-dns.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';

export const ZONE = 'fault.test';
export const policy = (label: string, mx = `mx.${label}.${ZONE}`, mode = 'enforce') =>
  `version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: 86400\n`;
export const secure = (label: string) => `OK secure match=mx.${label}.${ZONE} servername=hostname`;
/** A valid policy that only a broken fetch could deliver: its mx must never reach an answer. */
export const EVIL = policy('evil', 'evil.attacker.example');

export interface World {
  address: string;
  dnsAddress: string;
  nsd: DnsServer;
  faulty: FaultyDns;
  https: PolicyServer;
  /** Restart the fault injector (after stop(): "DNS server down"). */
  restartFaulty(): Promise<void>;
  close(): Promise<void>;
}

/** Every label gets a TXT record (id = label) and an A record for its policy host, served `policy(label)`. */
export async function startWorld(labels: string[], extra: (address: string) => DnsRecord[] = () => []): Promise<World> {
  const address = await allocateLoopback();
  const dnsAddress = await allocateLoopback();
  const https = await startPolicyServer({ address });
  const records: DnsRecord[] = [...extra(address)];
  for (const l of labels) {
    records.push({ name: `_mta-sts.${l}`, type: 'TXT', value: [`v=STSv1; id=${l.replace(/[^a-z0-9]/gi, '')}`] });
    records.push({ name: `mta-sts.${l}`, type: 'A', value: address });
    https.setRoute(`mta-sts.${l}.${ZONE}`, { body: policy(l) });
  }
  const nsd = await startDnsServer({ address, zones: { [ZONE]: { records } } });
  const world: World = {
    address,
    dnsAddress,
    nsd,
    https,
    faulty: await startFaultyDns({ address: dnsAddress, upstream: address }),
    async restartFaulty() {
      await world.faulty.stop();
      world.faulty = await startFaultyDns({ address: dnsAddress, upstream: address });
    },
    async close() {
      await world.faulty.stop();
      await nsd.stop();
      await https.stop();
      releaseLoopback(address);
      releaseLoopback(dnsAddress);
    },
  };
  return world;
}

export interface LogLine {
  level: number;
  msg: string;
  domain?: string;
  reason?: string;
  [k: string]: unknown;
}

export function logLines(sidecar: Sidecar): LogLine[] {
  return sidecar
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

export const WARN = 40;

export interface Daemon {
  sidecar: Sidecar;
  port: number;
  client: SocketmapClient;
  logs(): LogLine[];
  stop(): Promise<number | null>;
}

/**
 * Short timers, so that faults show within seconds. refetch_at_fraction: 86400 s x 0.00001 = 0.86 s, so
 * cached policies are refetched (same id) within a second and a broken policy host is actually contacted
 * while a test watches. min_fetch_interval_ms 0: pacing has its own test.
 */
export const FAST_RESOLVER: Record<string, number> = {
  answer_deadline_ms: 3000,
  recheck_interval_ms: 150,
  failure_retry_ms: 300,
  failure_backoff_max_ms: 300,
  dns_failure_ttl_ms: 300,
  negative_ttl_ms: 300,
  min_fetch_interval_ms: 0,
  refetch_at_fraction: 0.00001,
};

/** The built daemon against the world's fault injector, with short timeouts so faults show in seconds. */
export async function startDaemon(
  world: World,
  options: {
    socketmap?: string;
    yaml?: string;
    files?: Record<string, string>;
    allowPrivate?: boolean;
    /** fetch.timeout_ms; default 2000 (a first TLS handshake with a lab host can take a while on a busy machine). */
    fetchTimeoutMs?: number;
    /** resolver.* settings over FAST_RESOLVER. */
    resolver?: Record<string, number>;
  } = {},
): Promise<Daemon> {
  const port = await freePort();
  const sidecar = await startSidecar(
    `
socketmap: { listen: ["tcp:127.0.0.1:${port}"], shutdown_grace_ms: 500${options.socketmap ? `, ${options.socketmap}` : ''} }
dns: { servers: ["${world.dnsAddress}"], timeout_ms: 1000, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: ${options.allowPrivate ?? true}, timeout_ms: ${options.fetchTimeoutMs ?? 2000} }
resolver: ${JSON.stringify({ ...FAST_RESOLVER, ...options.resolver })}
${options.yaml ?? ''}
http: { listen: [] }
log: { level: debug }
`,
    { 'ca.pem': world.https.ca.certPem, ...options.files },
  );
  const client = await connectSocketmap({ port });
  return {
    sidecar,
    port,
    client,
    logs: () => logLines(sidecar),
    async stop() {
      client.close();
      return sidecar.stop();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` every 100 ms for at most `ms`; throws naming `what` when it never holds. */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 8_000): Promise<void> {
  for (let i = 0; i < ms / 100; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Queries `key` over and over for `ms`; returns every distinct answer with its count. */
export async function hammer(client: SocketmapClient, keys: string[], ms: number): Promise<Map<string, Map<string, number>>> {
  const seen = new Map<string, Map<string, number>>(keys.map((k) => [k, new Map()]));
  const end = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < end; i++) {
    for (const k of keys) {
      const reply = await client.query('postfix', k);
      const m = seen.get(k)!;
      m.set(reply, (m.get(reply) ?? 0) + 1);
    }
    await sleep(20);
  }
  return seen;
}
