/**
 * A DNSSEC-aware stub client for the DANE branch (RFC 7672): node:dns cannot show the AD bit, so these
 * queries are built and read with the `dns-packet` wire codec and sent by us, over UDP with a TCP retry
 * when the reply is truncated (RFC 7766 §5).
 *
 * We do not validate signatures ourselves: like Postfix (smtp_dns_support_level = dnssec) we trust the
 * AD bit of a validating resolver the host trusts, one on loopback or named in `dns.servers`
 * (RFC 6698 §4.1 leaves validation to a "security-aware resolver"; RFC 4035 §3.2.3 sets AD only
 * when every RRset of the answer and authority sections is authenticated). detectValidation() tells at
 * start whether that resolver validates at all.
 *
 * Every query is bounded: per-try timeout, tries, reply size (UDP 1232 bytes advertised, TCP at most
 * 65535 by its length prefix), and the reply must answer our question with our id, or it is ignored.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';
import * as packet from 'dns-packet';
import { StsError } from '../errors.js';

/** Record types the DANE branch asks for. */
export type SecureQueryType = 'MX' | 'A' | 'AAAA' | 'TLSA' | 'SOA' | 'CNAME';

/** One resource record as the DANE branch reads it; `data` is dns-packet's decoded RDATA for its type. */
export interface SecureRecord {
  name: string;
  type: string;
  ttl: number;
  data: unknown;
}

/** A resolver's reply: RCODE, the AD bit, and the sections we read. */
export interface SecureResponse {
  /** RFC 1035 §4.1.1 / RFC 6895 §2.3 mnemonic: NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... */
  rcode: string;
  /** RFC 4035 §3.2.3 AD: the validating resolver authenticated every RRset in answer and authority. */
  authenticated: boolean;
  answers: SecureRecord[];
  authorities: SecureRecord[];
}

export interface SecureDnsClient {
  /**
   * One question. Resolves with whatever RCODE the resolver gave (SERVFAIL included: the caller decides
   * what it means); throws StsError('dns') only when no resolver answered within the tries (timeouts,
   * connection errors, replies we could not read).
   */
  query(name: string, type: SecureQueryType): Promise<SecureResponse>;
}

export interface SecureDnsOptions {
  /** `IP`, `IP:PORT`, `[v6]:PORT`; empty = the nameservers of /etc/resolv.conf (dns.servers). */
  servers: string[];
  /** One try against one server (dns.timeout_ms). */
  timeoutMs: number;
  /** Passes over the server list (dns.tries). */
  tries: number;
  /** For tests: another resolv.conf. */
  resolvConf?: string;
}

/** The DNS flag day 2020 EDNS buffer size: fits an unfragmented IPv6 packet (RFC 9715 §3.2). */
export const EDNS_UDP_PAYLOAD = 1232;
/** RFC 1035 §4.2.2: a TCP message has a two-byte length prefix, so 65535 bytes at most. */
export const MAX_TCP_MESSAGE = 65_535;
/** resolv.conf(5) MAXNS: at most three nameserver lines are used. */
export const MAX_RESOLV_CONF_SERVERS = 3;
/** RFC 1035 §4.1.1: the header is 12 bytes; TC is bit 1 of its third byte. */
const HEADER_BYTES = 12;
const TC_BIT = 0x02;
/** RFC 1035 §2.3.4: at most 255 octets in a name (253 characters in text form). */
const MAX_NAME_CHARS = 253;

export interface ServerAddress {
  host: string;
  port: number;
  family: 4 | 6;
}

/** Parses `IP`, `IP:PORT`, `[v6]`, `[v6]:PORT` and a bare IPv6 address. Throws on anything else. */
export function parseServer(text: string): ServerAddress {
  let host = text;
  let port = 53;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if (isIP(text) === 0) {
    const at = text.lastIndexOf(':');
    if (at > 0 && isIP(text.slice(0, at)) === 4) {
      host = text.slice(0, at);
      port = Number(text.slice(at + 1));
    }
  }
  const family = isIP(host);
  if (family === 0 || !Number.isInteger(port) || port < 1 || port > 65_535) throw new StsError('dns', `bad DNS server address ${JSON.stringify(text)}`);
  return { host, port, family: family as 4 | 6 };
}

/** The nameservers of a resolv.conf(5), at most MAX_RESOLV_CONF_SERVERS; 127.0.0.1 when it names none. */
export function resolvConfServers(file = '/etc/resolv.conf'): ServerAddress[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // resolv.conf(5): without the file, the local host is the name server.
  }
  const out: ServerAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    // A link-local scope (fe80::1%eth0) is not something we can send to through node:dgram's address.
    const address = m[1]!.replace(/%.*$/, '');
    if (isIP(address) === 0) continue;
    out.push({ host: address, port: 53, family: isIP(address) as 4 | 6 });
    if (out.length === MAX_RESOLV_CONF_SERVERS) break;
  }
  return out.length > 0 ? out : [{ host: '127.0.0.1', port: 53, family: 4 }];
}

/** The client, and the servers it asks (for the start-up log). */
export type ConfiguredSecureDnsClient = SecureDnsClient & { readonly servers: readonly ServerAddress[] };

export function createSecureDnsClient(options: SecureDnsOptions): ConfiguredSecureDnsClient {
  const servers = options.servers.length > 0 ? options.servers.map(parseServer) : resolvConfServers(options.resolvConf);
  const tries = Math.max(1, options.tries);
  return {
    servers,
    async query(name, type) {
      const qname = name.replace(/\.$/, '') || '.';
      if (qname.length > MAX_NAME_CHARS) throw new StsError('dns', `${name}: name too long`);
      let last: unknown = undefined;
      // Bounded: tries × servers attempts, each bounded by timeoutMs (twice when it goes on over TCP).
      for (let t = 0; t < tries; t++) {
        for (const server of servers) {
          try {
            return await queryServer(server, qname, type, options.timeoutMs);
          } catch (err) {
            last = err;
          }
        }
      }
      const why = last instanceof Error ? last.message : 'no answer';
      throw new StsError('dns', `${qname} ${type}: ${why}`, { cause: last });
    },
  };
}

/** One exchange with one server: UDP, then TCP when the reply has TC set. */
async function queryServer(server: ServerAddress, name: string, type: SecureQueryType, timeoutMs: number): Promise<SecureResponse> {
  const id = randomInt(0, 0x10000);
  const query = encodeQuery(id, name, type);
  const udp = await exchangeUdp(server, query, id, name, type, timeoutMs);
  if (!udp.flag_tc) return responseOf(udp);
  const tcp = await exchangeTcp(server, query, id, name, type, timeoutMs);
  if (tcp.flag_tc) throw new Error('truncated over TCP');
  return responseOf(tcp);
}

/** RD, AD (RFC 6840 §5.7: ask for the AD bit) and an OPT record with DO set (RFC 3225 §3). */
export function encodeQuery(id: number, name: string, type: SecureQueryType): Buffer {
  return packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
    questions: [{ type, name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_PAYLOAD, flags: packet.DNSSEC_OK } as packet.Answer],
  });
}

/**
 * Decodes a reply and checks it answers our question (RFC 5452 §9.1: id, and the question echoed back),
 * or throws. A reply that does not decode exactly (bytes left over, a record running past the end) is
 * refused whole: nothing from it may count as authenticated data.
 */
export function decodeReply(buf: Buffer, id: number, name: string, type: SecureQueryType): packet.Packet {
  let reply: packet.Packet;
  try {
    checkFraming(buf);
    reply = packet.decode(buf);
  } catch (err) {
    throw new Error(`malformed reply: ${(err as Error).message}`);
  }
  if ((packet.decode as unknown as { bytes: number }).bytes !== buf.length) throw new Error('malformed reply: trailing bytes');
  if (reply.id !== id) throw new Error('reply id mismatch');
  if (reply.type !== 'response') throw new Error('not a response');
  const q = reply.questions?.[0];
  if (reply.questions?.length !== 1 || q === undefined || q.type !== type || !sameName(q.name, name)) {
    throw new Error('reply to another question');
  }
  return reply;
}

/** dns-packet's record codec, which its type declarations leave out. */
const recordCodec = (packet as unknown as { answer: { decode: ((buf: Buffer, offset: number) => unknown) & { bytes: number } } }).answer;

/**
 * RFC 1035 §4.1: walks the message by its own lengths (section counts, names, RDLENGTH) and checks that
 * every record decodes to exactly its RDLENGTH and the last one ends at the last byte. dns-packet alone
 * trusts its per-type decoders, which read what they expect (a TLSA cut short still decodes, shorter),
 * so a truncated or padded reply could otherwise pass as a smaller valid one.
 */
export function checkFraming(buf: Buffer): void {
  if (buf.length < HEADER_BYTES) throw new Error('shorter than a header');
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((at) => buf.readUInt16BE(at)) as [number, number, number, number];
  let off = HEADER_BYTES;
  for (let i = 0; i < qd; i++) {
    off = skipName(buf, off) + 4;
    if (off > buf.length) throw new Error('question past the end');
  }
  // At most 65535 records per section by the 16-bit counts, and each takes at least 11 bytes.
  for (let i = 0; i < an + ns + ar; i++) {
    const start = off;
    off = skipName(buf, off);
    if (off + 10 > buf.length) throw new Error('record header past the end');
    off += 10 + buf.readUInt16BE(off + 8);
    if (off > buf.length) throw new Error('record data past the end');
    recordCodec.decode(buf, start);
    if (recordCodec.decode.bytes !== off - start) throw new Error('record data does not fill its RDLENGTH');
  }
  if (off !== buf.length) throw new Error('bytes after the last record');
}

/** The offset just past a (possibly compressed) name at `off` (RFC 1035 §4.1.4); throws when malformed. */
function skipName(buf: Buffer, off: number): number {
  // A name is at most 255 octets, so at most 128 labels (RFC 1035 §2.3.4).
  for (let labels = 0; labels <= 128; labels++) {
    if (off >= buf.length) throw new Error('name past the end');
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) {
      if (off + 2 > buf.length) throw new Error('pointer past the end');
      return off + 2;
    }
    if ((len & 0xc0) !== 0) throw new Error('unknown label type');
    off += 1 + len;
  }
  throw new Error('name too long');
}

function sameName(a: string, b: string): boolean {
  const norm = (s: string) => (s.replace(/\.$/, '') || '.').toLowerCase();
  return norm(a) === norm(b);
}

/** decodeReply and what we read of it: the one path every reply from the resolver takes. */
export function responseFromWire(buf: Buffer, id: number, name: string, type: SecureQueryType): SecureResponse & { truncated: boolean } {
  const reply = decodeReply(buf, id, name, type) as packet.Packet & { flag_tc?: boolean };
  return { ...responseOf(reply), truncated: reply.flag_tc === true };
}

function responseOf(reply: packet.Packet): SecureResponse {
  const r = reply as packet.Packet & { flag_ad?: boolean; rcode?: string };
  return {
    rcode: r.rcode ?? 'NOERROR',
    authenticated: r.flag_ad === true,
    answers: recordsOf(reply.answers),
    authorities: recordsOf(reply.authorities),
  };
}

/** The records of a section, the EDNS OPT pseudo-record left out (RFC 6891 §6.1.1: it is no RRset). */
function recordsOf(section: packet.Answer[] | undefined): SecureRecord[] {
  const out: SecureRecord[] = [];
  for (const a of section ?? []) {
    if (a.type === 'OPT') continue;
    const r = a as { name: string; type: string; ttl?: number; data?: unknown };
    out.push({ name: r.name, type: r.type, ttl: r.ttl ?? 0, data: r.data });
  }
  return out;
}

function exchangeUdp(
  server: ServerAddress,
  query: Buffer,
  id: number,
  name: string,
  type: SecureQueryType,
  timeoutMs: number,
): Promise<packet.Packet & { flag_tc?: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: UdpSocket = createSocket(server.family === 6 ? 'udp6' : 'udp4');
    let done = false;
    let lastError: Error | undefined;
    const finish = (err: Error | null, reply?: packet.Packet) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(lastError ?? new Error('timed out')), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('message', (msg, from) => {
      // RFC 5452 §9.1: only the server we asked, and only our question; anything else is ignored, not fatal.
      if (from.port !== server.port || from.address.replace(/^::ffff:/, '') !== server.host) return;
      try {
        finish(null, decodeReply(msg, id, name, type));
      } catch (err) {
        // A truncated reply may be cut inside a record; its header still says to go on over TCP.
        if (msg.length >= HEADER_BYTES && msg.readUInt16BE(0) === id && (msg[2]! & TC_BIT) !== 0) {
          finish(null, { flag_tc: true } as packet.Packet & { flag_tc: boolean });
        } else lastError = err as Error;
      }
    });
    socket.send(query, server.port, server.host, (err) => {
      if (err) finish(err);
    });
  });
}

function exchangeTcp(
  server: ServerAddress,
  query: Buffer,
  id: number,
  name: string,
  type: SecureQueryType,
  timeoutMs: number,
): Promise<packet.Packet & { flag_tc?: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: server.host, port: server.port });
    let done = false;
    const chunks: Buffer[] = [];
    let have = 0;
    const finish = (err: Error | null, reply?: packet.Packet) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new Error('timed out over TCP')), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error('TCP connection closed before the reply')));
    socket.on('connect', () => {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(query.length);
      socket.write(Buffer.concat([prefix, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      // The length prefix bounds the message at MAX_TCP_MESSAGE; more than one message is never read.
      if (have > MAX_TCP_MESSAGE + 2) return finish(new Error('TCP reply too long'));
      if (have < 2) return;
      const all = Buffer.concat(chunks);
      const length = all.readUInt16BE(0);
      if (all.length < 2 + length) return;
      try {
        finish(null, decodeReply(all.subarray(2, 2 + length), id, name, type));
      } catch (err) {
        finish(err as Error);
      }
    });
  });
}

/**
 * Whether a server is on this host: the AD bit crosses the network unprotected (RFC 4035 §4.9.3, RFC 6698
 * §4.1: the path to the validating resolver must be trusted), so a remote validator is worth a warning.
 */
export function isLocalServer(server: ServerAddress): boolean {
  return server.family === 4 ? server.host.startsWith('127.') : server.host === '::1';
}

/** What detectValidation found: whether answers from this resolver can carry authenticated data. */
export interface ValidationStatus {
  validates: boolean;
  /** One line for the log and /readyz: what was asked and what came back. */
  detail: string;
}

/**
 * Whether the resolver validates DNSSEC: the root zone's SOA (signed since 2010) comes back with AD.
 * A resolver that does not validate never sets AD (RFC 4035 §3.2.3), so this cannot say yes wrongly
 * unless the resolver lies, which is why only a resolver the host trusts is asked. `probeName` is for
 * a lab whose trust anchor is not the root's.
 */
export async function detectValidation(client: SecureDnsClient, probeName = '.'): Promise<ValidationStatus> {
  try {
    const r = await client.query(probeName, 'SOA');
    const signed = r.rcode === 'NOERROR' && r.answers.some((a) => a.type === 'SOA');
    if (signed && r.authenticated) return { validates: true, detail: `${probeName} SOA authenticated (AD)` };
    if (!signed) return { validates: false, detail: `${probeName} SOA: ${r.rcode}, no SOA in the answer` };
    return { validates: false, detail: `${probeName} SOA answered without AD: the resolver does not validate DNSSEC` };
  } catch (err) {
    return { validates: false, detail: `${probeName} SOA: ${(err as Error).message}` };
  }
}
