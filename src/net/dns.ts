/**
 * DNS for discovery and for the policy host, through our own resolver settings (`dns.servers`), never
 * the process-wide ones: the policy host's addresses must come from the same DNS view as the TXT record.
 */
import { promises as dnsPromises } from 'node:dns';
import { StsError } from '../errors.js';

/** NXDOMAIN and NODATA are answers, not failures (RFC 8461 §3.1: no record = no policy). */
export type TxtAnswer =
  | { kind: 'records'; records: string[][] }
  | { kind: 'nxdomain' }
  | { kind: 'nodata' };

export interface Address {
  address: string;
  family: 4 | 6;
}

export interface DnsClient {
  /** Throws StsError('dns') for SERVFAIL, timeouts, refusals. CNAMEs are followed by the resolver. */
  txt(name: string): Promise<TxtAnswer>;
  /** A and AAAA together; throws StsError('dns') when neither can be had or the name has none. */
  addresses(name: string): Promise<Address[]>;
}

/** One MX record (RFC 5321 §5.1). `exchange` is '' for a null MX ("0 .", RFC 7505). */
export interface MxRecord {
  exchange: string;
  priority: number;
}

/** NXDOMAIN and NODATA are answers here too: a domain without MX records is a fact to report. */
export type MxAnswer = { kind: 'records'; records: MxRecord[] } | { kind: 'nxdomain' } | { kind: 'nodata' };

/**
 * MX lookup, used by `check` (the daemon never needs it: the MTA chooses the MX). Kept apart from
 * DnsClient so code and fakes that only need TXT and addresses do not have to provide it.
 */
export interface MxLookup {
  /** Sorted by priority, then name. Throws StsError('dns') for SERVFAIL, timeouts, refusals. */
  mx(name: string): Promise<MxAnswer>;
}

export interface DnsOptions {
  /** `IP` or `IP:PORT` (`[v6]:PORT`); empty = the system's resolv.conf. */
  servers: string[];
  timeoutMs: number;
  tries: number;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'NXDOMAIN']);
const NO_DATA = new Set(['ENODATA']);

export function createDnsClient(options: DnsOptions): DnsClient & MxLookup {
  const resolver = new dnsPromises.Resolver({ timeout: options.timeoutMs, tries: options.tries });
  if (options.servers.length > 0) resolver.setServers(options.servers);

  return {
    async txt(name) {
      try {
        return { kind: 'records', records: await resolver.resolveTxt(name) };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (NOT_FOUND.has(code)) return { kind: 'nxdomain' };
        if (NO_DATA.has(code)) return { kind: 'nodata' };
        throw dnsError(name, 'TXT', err);
      }
    },
    async addresses(name) {
      const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
      const out: Address[] = [];
      if (v4.status === 'fulfilled') for (const a of v4.value) out.push({ address: a, family: 4 });
      if (v6.status === 'fulfilled') for (const a of v6.value) out.push({ address: a, family: 6 });
      if (out.length > 0) return out;
      const failure = [v4, v6].find(
        (r): r is PromiseRejectedResult =>
          r.status === 'rejected' && !NOT_FOUND.has(r.reason?.code) && !NO_DATA.has(r.reason?.code),
      );
      if (failure) throw dnsError(name, 'A/AAAA', failure.reason);
      throw new StsError('dns', `${name}: no A or AAAA record`);
    },
    async mx(name) {
      try {
        const records = await resolver.resolveMx(name);
        // node:dns gives the RRset in wire order; sort as RFC 5321 §5.1 has senders try them.
        records.sort((a, b) => a.priority - b.priority || a.exchange.localeCompare(b.exchange));
        return { kind: 'records', records: records.map(({ exchange, priority }) => ({ exchange, priority })) };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (NOT_FOUND.has(code)) return { kind: 'nxdomain' };
        if (NO_DATA.has(code)) return { kind: 'nodata' };
        throw dnsError(name, 'MX', err);
      }
    },
  };
}

function dnsError(name: string, type: string, err: unknown): StsError {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  return new StsError('dns', `${name} ${type}: ${code}`, { cause: err });
}
