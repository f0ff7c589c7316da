/**
 * A scripted world for resolver unit tests: TXT answers and policy bodies the test sets and changes, a
 * controllable clock, and counts of DNS and HTTPS calls. The resolver's collaborators are stand-ins
 * here; the real network path is covered by the integration tests against real servers.
 */
import { pino, type Logger } from 'pino';
import { Resolver, type ResolverOptions } from '../../src/resolver/resolver.js';
import { StsError } from '../../src/errors.js';
import { MemoryStore } from '../../src/cache/memory-store.js';
import type { DnsClient, TxtAnswer } from '../../src/net/dns.js';
import type { ResolverObserver } from '../../src/resolver/observer.js';
import type { PolicyStore } from '../../src/cache/store.js';

export const OPTIONS: ResolverOptions = {
  answerDeadlineMs: 200,
  negativeTtlMs: 60_000,
  failureRetryMs: 300_000,
  recheckIntervalMs: 600_000,
  dnsFailureTtlMs: 30_000,
  memoryEntries: 100,
  memoryMaxBytes: 64 * 1024 * 1024,
  maxConcurrentFetches: 2,
  maxPending: 1_000,
  minFetchIntervalMs: 60_000,
  refreshIntervalMs: 86_400_000,
  refetchAtFraction: 0.5,
  failureBackoffMaxMs: 3_600_000,
};

export const policyText = (mode = 'enforce', maxAge = 86400, mx = 'mx1.example.com') =>
  `version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: ${maxAge}\n`;

/** A world whose TXT answers and policy bodies the test sets and changes. */
export function world(
  store: PolicyStore = new MemoryStore(),
  start = 1_000_000_000_000,
  observer: ResolverObserver = {},
  logger: Logger = pino({ level: 'silent' }),
  options: Partial<ResolverOptions> = {},
) {
  let clock = start;
  // An Error that is not an StsError stands for a bug in a collaborator (reason class `internal`).
  const txt = new Map<string, TxtAnswer | Error>();
  const bodies = new Map<string, string | Error>();
  const calls = { txt: 0, fetch: 0 };
  let fetchGate: Promise<void> | null = null;
  const dns: DnsClient = {
    async txt(name) {
      calls.txt++;
      const a = txt.get(name) ?? { kind: 'nxdomain' };
      if (a instanceof Error) throw a;
      return a;
    },
    async addresses() {
      return [];
    },
  };
  const fetcher = {
    async fetch(domain: string) {
      calls.fetch++;
      if (fetchGate) await fetchGate;
      const b = bodies.get(domain);
      if (b === undefined) throw new StsError('http-status', 'HTTP 404');
      if (b instanceof Error) throw b;
      return { text: b };
    },
  };
  const resolver = new Resolver({ dns, fetcher, store, logger, observer, now: () => clock }, { ...OPTIONS, ...options });
  return {
    resolver,
    store,
    calls,
    publish(domain: string, id: string | null, body?: string | Error) {
      if (id === null) txt.delete(`_mta-sts.${domain}`);
      else txt.set(`_mta-sts.${domain}`, { kind: 'records', records: [[`v=STSv1; id=${id}`]] });
      if (body !== undefined) bodies.set(domain, body);
    },
    txtRecords(domain: string, records: string[][]) {
      txt.set(`_mta-sts.${domain}`, { kind: 'records', records });
    },
    now: () => clock,
    txtFails(domain: string, error: Error = new StsError('dns', 'SERVFAIL')) {
      txt.set(`_mta-sts.${domain}`, error);
    },
    advance(ms: number) {
      clock += ms;
    },
    gate() {
      let open!: () => void;
      fetchGate = new Promise((r) => (open = r));
      return () => {
        fetchGate = null;
        open();
      };
    },
  };
}

