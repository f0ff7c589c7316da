/**
 * The DANE branch beside MTA-STS (RFC 8461 §2: MTA-STS must never override DANE). For a destination
 * domain it finds, through a validating resolver (src/net/secure-dns.ts), whether DANE applies as
 * RFC 7672 §2.2 has an SMTP client decide it:
 *
 *   MX RRset, authenticated (§2.2.1) -- or the domain itself when it has none (implicit MX, RFC 5321 §5.1);
 *   each MX host's A/AAAA, authenticated, CNAMEs expanded (§2.2.2);
 *   `_25._tcp.<host>` TLSA, authenticated, at the expanded name first, then the original (§2.2.3);
 *   usable records: DANE-TA(2)/DANE-EE(3) with known selector and matching type (RFC 7672 §3.1).
 *
 * The outcome per domain (DaneState) is all the answer needs: Postfix does its own TLSA lookups and
 * certificate checks once told `dane` or `dane-only`; we only decide which level to ask for. Results are
 * cached by the DNS TTLs (bounded in entries and in time) apart from the MTA-STS cache, and the answer
 * is made from both on every lookup, so a fresher DANE result takes effect at once.
 */
import type { SecureDnsClient, SecureQueryType, SecureRecord, SecureResponse } from '../net/secure-dns.js';
import { tlsaUnusable, type TlsaRecord, type TlsaUnusable } from './tlsa.js';
import { ClockCache, type CacheSlot } from './clock-cache.js';

/**
 * What DANE means for a domain:
 * - `dane-only`: every MX host has usable TLSA records (Postfix `dane-only`: DANE or no delivery).
 * - `dane`: some MX host has TLSA records, usable or not (Postfix `dane`: DANE where it applies).
 * - `none`: DANE proven not to apply (insecure delegation or authenticated denial): MTA-STS decides.
 * - `null-mx`: the domain accepts no mail (RFC 7505), authenticated: nothing for DANE or MTA-STS to do.
 * - `temp`: a lookup failed (SERVFAIL, bogus, timeout): unknown, and never read as `none`.
 */
export type DaneState = 'dane-only' | 'dane' | 'none' | 'null-mx' | 'temp';

/** Why a domain got its state: a closed set, shown by `query` and counted in metrics. */
export type DaneWhy =
  | 'all-usable'
  | 'some-usable'
  | 'records-unusable'
  | 'no-tlsa'
  | 'insecure-mx'
  | 'nxdomain'
  | 'null-mx'
  | 'mx-lookup-failed'
  | 'host-lookup-failed'
  /** lookup() only: answerDeadlineMs passed first; the resolution goes on and is cached when done. */
  | 'deadline';

/** Every state with the reasons that lead to it: the closed label set of the DANE lookup counter. */
export const DANE_OUTCOMES: ReadonlyArray<readonly [DaneState, DaneWhy]> = [
  ['dane-only', 'all-usable'],
  ['dane', 'some-usable'],
  ['dane', 'records-unusable'],
  ['none', 'no-tlsa'],
  ['none', 'insecure-mx'],
  ['none', 'nxdomain'],
  ['null-mx', 'null-mx'],
  ['temp', 'mx-lookup-failed'],
  ['temp', 'host-lookup-failed'],
];

/** What DANE means for one MX host. */
export type DaneHostState =
  /** At least one usable TLSA record. */
  | 'usable'
  /** Authenticated TLSA records, none usable: RFC 7672 §2.2 has the client still require TLS (Postfix `encrypt`). */
  | 'unusable'
  /** Authenticated denial of TLSA records (NXDOMAIN or NODATA with AD). */
  | 'no-tlsa'
  /** The host's addresses or TLSA records are not authenticated: DANE does not apply (RFC 7672 §2.2.2). */
  | 'insecure'
  /** The host has no address: nothing to connect to. */
  | 'no-address'
  /** An address or TLSA lookup failed: RFC 7672 §2.2.3 has the client skip the host, not downgrade it. */
  | 'temp'
  /** Beyond DANE_LIMITS.MAX_MX_HOSTS: not looked at. */
  | 'unchecked';

export interface DaneTlsa {
  record: TlsaRecord;
  unusable: TlsaUnusable | null;
}

export interface DaneHost {
  /** The MX exchange as published (lower case, no trailing dot). */
  name: string;
  priority: number;
  state: DaneHostState;
  /** The TLSA owner whose records were found (`_25._tcp.<expanded or original name>`), when any. */
  tlsaName?: string;
  records: DaneTlsa[];
  /** One line for `query`/`check` when the state needs explaining (which lookup failed, and how). */
  detail?: string;
}

export interface DaneResult {
  domain: string;
  state: DaneState;
  why: DaneWhy;
  hosts: DaneHost[];
  /** When this result stops being used (ms since the epoch). */
  expiresAt: number;
  /** One line for logs and `query`, e.g. the failed lookup. */
  detail?: string;
}

/** RFC 7672 §3: SMTP servers listen on port 25, so the TLSA owner is `_25._tcp.<host>` (RFC 6698 §3). */
export const SMTP_TLSA_PREFIX = '_25._tcp.';

export const DANE_LIMITS = {
  /** MX hosts looked at per domain (each costs up to four queries); Postfix tries far fewer per delivery. */
  MAX_MX_HOSTS: 16,
  /** CNAME links followed inside one answer (RFC 7672 §2.2.2 expansion); real chains are one or two. */
  MAX_CNAME_CHAIN: 8,
} as const;

export interface DaneOptions {
  /** Cached domains at most. */
  maxEntries: number;
  /** And at most this many bytes (estimated by daneResultBytes); a result bigger than this is not cached. */
  maxBytes: number;
  /** A result is kept at least this long, whatever the TTLs (DNS TTL 0 would otherwise mean re-asking every time). */
  minTtlMs: number;
  /** And at most this long (like a resolver's cache-max-ttl). */
  maxTtlMs: number;
  /** A temporary failure is remembered this long, so a broken zone is not asked on every mail. */
  tempTtlMs: number;
  /**
   * lookup() answers `temp` (why `deadline`) when a resolution takes longer than this
   * (resolver.answer_deadline_ms): a slow resolver must not hold Postfix past its own timeouts.
   */
  answerDeadlineMs: number;
}

export const DANE_DEFAULTS: DaneOptions = {
  maxEntries: 100_000,
  maxBytes: 32 * 1024 * 1024,
  minTtlMs: 5_000,
  maxTtlMs: 3600_000,
  tempTtlMs: 10_000,
  answerDeadlineMs: Infinity,
};

/** What the protocol handlers need of the DANE branch (src/server/postfix/map.ts, src/server/exim/lookup.ts). */
export interface DaneLookup {
  /** False while the resolver is not known to validate DNSSEC: nothing about DANE can be told then. */
  active(): boolean;
  /** Never rejects; a failure is a `temp` result. */
  lookup(domain: string): Promise<DaneResult>;
  /** An unexpired cached result, else undefined. */
  lookupHot(domain: string): DaneResult | undefined;
}

/** Told of every resolution (not of cache hits): for the DANE lookup outcome counter and logs. */
export type DaneObserver = (result: DaneResult) => void;

export class DaneResolver {
  private readonly cache: ClockCache<string, CacheSlot & { result: DaneResult }>;
  private readonly pending = new Map<string, Promise<DaneResult>>();
  private readonly options: DaneOptions;

  constructor(
    private readonly dns: SecureDnsClient,
    options: Partial<DaneOptions> = {},
    private readonly observer?: DaneObserver,
    private readonly now: () => number = Date.now,
  ) {
    this.options = { ...DANE_DEFAULTS, ...options };
    this.cache = new ClockCache({ maxEntries: this.options.maxEntries, maxBytes: this.options.maxBytes, bytesOf: (slot) => daneResultBytes(slot.result) });
  }

  /** An unexpired cached result, without resolving. */
  lookupHot(domain: string): DaneResult | undefined {
    const hit = this.cache.get(domain)?.result;
    if (hit === undefined) return undefined;
    if (hit.expiresAt <= this.now()) {
      this.cache.delete(domain);
      return undefined;
    }
    return hit;
  }

  /**
   * The cached result, else one resolution per domain at a time (single-flight), answered as `temp`
   * (why `deadline`) if it takes longer than answerDeadlineMs. Never rejects.
   */
  lookup(domain: string): Promise<DaneResult> {
    const hot = this.lookupHot(domain);
    if (hot !== undefined) return Promise.resolve(hot);
    let running = this.pending.get(domain);
    if (running === undefined) {
      const work = this.resolve(domain).then((result) => {
        this.cache.set(domain, { result, used: false, bytes: 0 });
        return result;
      });
      running = work.finally(() => this.pending.delete(domain));
      this.pending.set(domain, running);
    }
    return this.withinDeadline(domain, running);
  }

  private withinDeadline(domain: string, running: Promise<DaneResult>): Promise<DaneResult> {
    const ms = this.options.answerDeadlineMs;
    if (!Number.isFinite(ms)) return running;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<DaneResult>((resolve) => {
      // Not cached: the resolution still running will be, when it ends.
      timer = setTimeout(() => resolve({ domain, state: 'temp', why: 'deadline', hosts: [], expiresAt: this.now(), detail: `no DANE answer within ${ms} ms` }), ms);
    });
    return Promise.race([running, late]).finally(() => clearTimeout(timer));
  }

  /** Forgets every cached result (a reload that changes the DNS settings). */
  clear(): void {
    this.cache.clear();
  }

  /** Resolution without the cache (used by `query --fresh`-like callers and by lookup). Never rejects. */
  async resolve(domain: string): Promise<DaneResult> {
    let result: DaneResult;
    try {
      result = await this.resolveUncaught(domain);
    } catch (err) {
      // A bug, not the world: still never `none` (which would let MTA-STS decide).
      result = this.result(domain, 'temp', 'mx-lookup-failed', [], Infinity, `internal: ${(err as Error).message}`);
    }
    this.observer?.(result);
    return result;
  }

  private async resolveUncaught(domain: string): Promise<DaneResult> {
    const mx = await this.ask(domain, 'MX');
    if (!mx.ok) return this.result(domain, 'temp', 'mx-lookup-failed', [], Infinity, mx.detail);
    const r = mx.response;
    const ttl = minTtl(r);
    // RFC 7672 §2.2.1: a domain that does not exist has no MX hosts to protect.
    if (r.rcode === 'NXDOMAIN') return this.result(domain, 'none', 'nxdomain', [], ttl);
    // §2.2.1: an insecure MX RRset (or a CNAME leading to it) means DANE does not apply to the domain.
    if (!r.authenticated) return this.result(domain, 'none', 'insecure-mx', [], ttl);
    const records = r.answers.filter((a) => a.type === 'MX').map((a) => a.data as { preference: number; exchange: string });
    // RFC 7505 §3: one MX with the root as exchange says the domain takes no mail.
    if (records.length === 1 && hostName(records[0]!.exchange) === '') return this.result(domain, 'null-mx', 'null-mx', [], ttl);
    const targets = records.length > 0 ? mxTargets(records) : [{ name: domain, priority: 0 }];
    // Only root exchanges (several null MX, against RFC 7505 §3's one): no host either; never "all usable".
    if (targets.length === 0) return this.result(domain, 'null-mx', 'null-mx', [], ttl);
    const checked = targets.slice(0, DANE_LIMITS.MAX_MX_HOSTS);
    const looked = await Promise.all(checked.map((t) => this.checkHost(t.name, t.priority)));
    const hosts = [...looked.map((h) => h.host), ...targets.slice(checked.length).map((t): DaneHost => ({ ...t, state: 'unchecked', records: [] }))];
    const hostTtl = Math.min(ttl, ...looked.map((h) => h.ttl));
    return this.classify(domain, hosts, hostTtl);
  }

  /** RFC 7672 §2.2 as a table over the MX hosts' states. */
  private classify(domain: string, hosts: DaneHost[], ttl: number): DaneResult {
    const has = (s: DaneHostState) => hosts.some((h) => h.state === s);
    if (hosts.every((h) => h.state === 'usable')) return this.result(domain, 'dane-only', 'all-usable', hosts, ttl);
    if (has('usable')) return this.result(domain, 'dane', 'some-usable', hosts, ttl);
    if (has('unusable')) return this.result(domain, 'dane', 'records-unusable', hosts, ttl);
    // A host we could not look at might have TLSA records: not proven absent, so not `none`.
    if (has('temp')) return this.result(domain, 'temp', 'host-lookup-failed', hosts, Infinity, hosts.find((h) => h.state === 'temp')?.detail);
    return this.result(domain, 'none', 'no-tlsa', hosts, ttl);
  }

  /** One MX host: addresses, then TLSA at the CNAME-expanded name and at the original (§2.2.2, §2.2.3). */
  private async checkHost(name: string, priority: number): Promise<{ host: DaneHost; ttl: number }> {
    const base = { name, priority, records: [] as DaneTlsa[] };
    const [a, aaaa] = await Promise.all([this.ask(name, 'A'), this.ask(name, 'AAAA')]);
    const answered = [a, aaaa].filter((x): x is Asked & { ok: true } => x.ok);
    const withAddresses = answered.filter((x) => x.response.answers.some((r) => r.type === 'A' || r.type === 'AAAA'));
    const failed = [a, aaaa].find((x): x is Asked & { ok: false } => !x.ok);
    const ttl = Math.min(Infinity, ...answered.map((x) => minTtl(x.response)));
    if (withAddresses.length === 0) {
      if (failed) return { host: { ...base, state: 'temp', detail: failed.detail }, ttl };
      return { host: { ...base, state: 'no-address' }, ttl };
    }
    // §2.2.2: TLSA records are looked up only for hosts whose address records are authenticated.
    if (!withAddresses.every((x) => x.response.authenticated)) return { host: { ...base, state: 'insecure' }, ttl };
    const expanded = expandCname(name, withAddresses[0]!.response);
    const owners = expanded !== name ? [expanded, name] : [name];
    let insecure = false;
    let tlsaTtl = ttl;
    for (const owner of owners) {
      const tlsaName = SMTP_TLSA_PREFIX + owner;
      const t = await this.ask(tlsaName, 'TLSA');
      // §2.2.3: a failed TLSA lookup makes the host unusable for now; it is never read as "no TLSA".
      if (!t.ok) return { host: { ...base, state: 'temp', detail: t.detail }, ttl: tlsaTtl };
      tlsaTtl = Math.min(tlsaTtl, minTtl(t.response));
      if (!t.response.authenticated) {
        insecure = true;
        continue;
      }
      const records = t.response.answers.filter((r) => r.type === 'TLSA').map((r) => tlsaOf(r));
      if (records.length === 0) continue;
      const classified = records.map((record) => ({ record, unusable: tlsaUnusable(record) }));
      const state = classified.some((r) => r.unusable === null) ? 'usable' : 'unusable';
      return { host: { ...base, state, tlsaName, records: classified }, ttl: tlsaTtl };
    }
    return { host: { ...base, state: insecure ? 'insecure' : 'no-tlsa' }, ttl: tlsaTtl };
  }

  /** A query whose failure is data: ok with any RCODE that is an answer (NOERROR, NXDOMAIN), else why not. */
  private async ask(name: string, type: SecureQueryType): Promise<Asked> {
    try {
      const response = await this.dns.query(name, type);
      if (response.rcode === 'NOERROR' || response.rcode === 'NXDOMAIN') return { ok: true, response };
      // RFC 7672 §2.1.1: SERVFAIL (a validating resolver's answer for bogus data too), REFUSED, ... are
      // lookup failures, never "insecure".
      return { ok: false, detail: `${name} ${type}: ${response.rcode}` };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  private result(domain: string, state: DaneState, why: DaneWhy, hosts: DaneHost[], ttlSeconds: number, detail?: string): DaneResult {
    const o = this.options;
    const lifetime = state === 'temp' ? o.tempTtlMs : Math.min(o.maxTtlMs, Math.max(o.minTtlMs, ttlSeconds * 1000));
    return { domain, state, why, hosts, expiresAt: this.now() + lifetime, ...(detail === undefined ? {} : { detail }) };
  }
}

/** Bytes a cached result holds, estimated: fixed overheads plus names and TLSA data (bounded by DNS sizes). */
export function daneResultBytes(r: DaneResult): number {
  let bytes = 200 + r.domain.length * 2 + (r.detail?.length ?? 0) * 2;
  for (const h of r.hosts) {
    bytes += 150 + (h.name.length + (h.tlsaName?.length ?? 0) + (h.detail?.length ?? 0)) * 2;
    for (const t of h.records) bytes += 120 + t.record.data.length;
  }
  return bytes;
}

type Asked = { ok: true; response: SecureResponse } | { ok: false; detail: string };

/** Exchange as a host name: lower case, no trailing dot; '' for the root (a null MX). */
function hostName(exchange: string): string {
  return exchange.toLowerCase().replace(/\.$/, '');
}

/** MX targets by preference (RFC 5321 §5.1), each host once, the null exchange left out. */
function mxTargets(records: Array<{ preference: number; exchange: string }>): Array<{ name: string; priority: number }> {
  const seen = new Map<string, number>();
  for (const r of records) {
    const name = hostName(r.exchange);
    if (name === '') continue;
    const before = seen.get(name);
    if (before === undefined || r.preference < before) seen.set(name, r.preference);
  }
  return [...seen].map(([name, priority]) => ({ name, priority })).sort((x, y) => x.priority - y.priority || x.name.localeCompare(y.name));
}

/** The name a CNAME chain in an answer leads `name` to (itself when there is none), bounded. */
export function expandCname(name: string, response: SecureResponse): string {
  let current = name;
  for (let i = 0; i < DANE_LIMITS.MAX_CNAME_CHAIN; i++) {
    const link = response.answers.find((r) => r.type === 'CNAME' && hostName(r.name) === current);
    if (link === undefined) break;
    current = hostName(link.data as string);
  }
  return current;
}

/** Smallest TTL among the records read; for a negative answer, the SOA's (RFC 2308 §5), in seconds. */
function minTtl(r: SecureResponse): number {
  let ttl = Infinity;
  for (const rec of r.answers) if (rec.type !== 'RRSIG' && typeof rec.ttl === 'number') ttl = Math.min(ttl, rec.ttl);
  for (const rec of r.authorities) {
    if (rec.type !== 'SOA') continue;
    const soa = rec.data as { minimum?: number };
    ttl = Math.min(ttl, rec.ttl ?? Infinity, soa.minimum ?? Infinity);
  }
  return ttl;
}

function tlsaOf(r: SecureRecord): TlsaRecord {
  const d = r.data as { usage: number; selector: number; matchingType: number; certificate: Buffer };
  return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: Buffer.from(d.certificate) };
}
