/**
 * A DNS FAULT INJECTOR, not a DNS server: a UDP+TCP listener on <address>:53 that relays queries to the
 * real lab server (NSD, test/lab/dns-server.ts) and, when told to, breaks the exchange in one of the
 * ways real DNS breaks. Normal answers always come from NSD; this only forwards or sabotages them.
 *
 *   'pass'      relay every query to NSD and its answer back (UDP and TCP)
 *   'slow'      relay, but hold each answer back for `delayMs`
 *   'servfail'  answer every query SERVFAIL (RCODE 2) itself
 *   'truncate'  answer over UDP with TC=1 and no records (as NSD does for a large answer), and close every
 *               TCP connection at once, so the retry over TCP fails
 *   'drop'      read queries and never answer
 * `stop()` closes the listeners: then the server is down (ICMP port unreachable, connection refused).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { assertLoopback } from './loopback.js';

export type DnsFault = 'pass' | 'slow' | 'servfail' | 'truncate' | 'drop';

export interface FaultyDns {
  readonly address: string;
  /** Switch the fault for every query from now on. */
  set(fault: DnsFault, options?: { delayMs?: number }): void;
  readonly fault: DnsFault;
  /** Queries seen (UDP datagrams + TCP connections). */
  queries(): number;
  stop(): Promise<void>;
}

const HEADER_BYTES = 12;
const UPSTREAM_TIMEOUT_MS = 3_000;
const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const RCODE_SERVFAIL = 2;

/** Header + the question section of `query`, with our flags and no records: a complete reply. */
export function bareReply(query: Buffer, flags: number, rcode: number): Buffer | null {
  if (query.length < HEADER_BYTES || query.readUInt16BE(4) !== 1) return null;
  // The question: a name (labels up to a zero byte), then QTYPE and QCLASS.
  let at = HEADER_BYTES;
  for (let n = 0; n < 128 && at < query.length && query[at] !== 0; n++) at += 1 + query[at]!;
  const end = at + 1 + 4;
  if (end > query.length) return null;
  const reply = Buffer.from(query.subarray(0, end));
  const opcode = query.readUInt16BE(2) & 0x7800;
  reply.writeUInt16BE(FLAG_QR | opcode | (query.readUInt16BE(2) & FLAG_RD) | FLAG_RA | flags | rcode, 2);
  reply.writeUInt16BE(1, 4); // QDCOUNT
  reply.writeUInt32BE(0, 6); // ANCOUNT, NSCOUNT
  reply.writeUInt16BE(0, 10); // ARCOUNT
  return reply;
}

export async function startFaultyDns(options: { address: string; upstream: string; upstreamPort?: number }): Promise<FaultyDns> {
  const { address, upstream } = options;
  assertLoopback(address);
  assertLoopback(upstream);
  const upstreamPort = options.upstreamPort ?? 53;
  let fault: DnsFault = 'pass';
  let delayMs = 0;
  let count = 0;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const relays = new Set<UdpSocket>();

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const udp = createSocket('udp4');
  udp.on('error', () => {});
  udp.on('message', (query, peer) => {
    count++;
    const reply = (b: Buffer | null) => b && udp.send(b, peer.port, peer.address, () => {});
    switch (fault) {
      case 'drop':
        return;
      case 'servfail':
        return reply(bareReply(query, 0, RCODE_SERVFAIL));
      case 'truncate':
        return reply(bareReply(query, FLAG_TC, 0));
      case 'pass':
      case 'slow': {
        const wait = fault === 'slow' ? delayMs : 0;
        // One relay socket per query: answers cannot be mixed up, and each is closed after use.
        const relay = createSocket('udp4');
        relays.add(relay);
        const done = () => {
          relays.delete(relay);
          relay.close();
        };
        relay.on('error', done);
        relay.once('message', (answer) => {
          done();
          if (wait > 0) later(wait, () => reply(answer));
          else reply(answer);
        });
        later(UPSTREAM_TIMEOUT_MS, () => relays.has(relay) && done());
        relay.send(query, upstreamPort, upstream);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind({ address, port: 53, exclusive: true }, () => {
      udp.off('error', reject);
      resolve();
    });
  });

  const tcp: Server = createServer((client) => {
    count++;
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    if (fault === 'truncate') {
      client.destroy();
      return;
    }
    if (fault === 'drop') {
      client.resume();
      return;
    }
    if (fault === 'servfail') {
      let buf = Buffer.alloc(0);
      client.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (let n = 0; n < 16 && buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0); n++) {
          const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + q.length);
          const r = bareReply(q, 0, RCODE_SERVFAIL);
          if (r) client.write(Buffer.concat([Buffer.from([r.length >> 8, r.length & 255]), r]));
        }
      });
      return;
    }
    const wait = fault === 'slow' ? delayMs : 0;
    const up = connect(upstreamPort, upstream);
    sockets.add(up);
    up.on('error', () => client.destroy());
    up.on('close', () => {
      sockets.delete(up);
      client.end();
    });
    client.on('close', () => up.destroy());
    client.pipe(up);
    up.on('data', (d: Buffer) => (wait > 0 ? later(wait, () => client.write(d)) : client.write(d)));
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host: address, port: 53, exclusive: true }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });

  let stopped = false;
  return {
    address,
    get fault() {
      return fault;
    },
    set(next, opts = {}) {
      fault = next;
      delayMs = opts.delayMs ?? 0;
    },
    queries: () => count,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      for (const r of relays) r.close();
      await Promise.all([new Promise<void>((r) => tcp.close(() => r())), new Promise<void>((r) => udp.close(() => r()))]);
    },
  };
}
