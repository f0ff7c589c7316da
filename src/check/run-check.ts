/**
 * `check DOMAIN`: walk the rollout a domain owner goes through, with the daemon's own network code (DNS
 * client, strict policy fetcher, address filter) and a STARTTLS probe per MX address, and yield each
 * step as soon as it is judged, so the CLI can show progress while the slow MX probes run.
 *
 * Order of work: DNS records, then the policy host, then the MX hosts. The MX lookups and probes start
 * at once in the background (bounded), and are reported in MX order after the policy steps.
 */
import { hostname } from 'node:os';
import type { Config } from '../config/schema.js';
import { isStsError, type ReasonClass } from '../errors.js';
import type { Address, DnsClient, MxLookup } from '../net/dns.js';
import type { PolicyFetcher } from '../net/policy-fetch.js';
import { createStartTlsProber, type StartTlsProbe, type StartTlsProber } from '../net/starttls-probe.js';
import { networkFromConfig } from '../net/from-config.js';
import { createSecureDnsClient, detectValidation, type ValidationStatus } from '../net/secure-dns.js';
import { ConcurrencyLimit } from '../resolver/concurrency-limit.js';
import { DaneResolver, type DaneResult } from '../resolver/dane.js';
import { judgeDane, judgeMxTlsa, judgeTlsaMatch } from './judge-dane.js';
import { RFC8461 } from '../sts/rfc8461.js';
import { TLSRPT_PREFIX } from '../sts/tlsrpt.js';
import type { Policy } from '../sts/types.js';
import {
  advise,
  judgeMxCovered,
  judgeMxDns,
  judgeMxRecords,
  judgePolicy,
  judgePolicyFetch,
  judgePolicyHostDns,
  judgeProbe,
  judgeStsTxt,
  judgeTlsRpt,
  summarize,
  type FetchOutcome,
  type Lookup,
} from './judge.js';
import type { CheckEvent, CheckReport, Step } from './types.js';

export interface CheckDeps {
  dns: DnsClient & MxLookup;
  fetcher: Pick<PolicyFetcher, 'fetch'>;
  probe: StartTlsProber;
  now: () => number;
  /** The DANE branch (RFC 7672) through the validating resolver; without it the DANE steps are left out. */
  dane?: CheckDane;
}

export interface CheckDane {
  resolver: Pick<DaneResolver, 'resolve'>;
  /** Whether the resolver validates DNSSEC: without it nothing about DANE can be told. */
  validation: () => Promise<ValidationStatus>;
}

export interface CheckOptions {
  /** `fetch.allow_private_addresses`: the same SSRF rule for MX hosts as for policy hosts. */
  allowPrivateAddresses: boolean;
  /** STARTTLS probes running at once. */
  probeConcurrency: number;
  /** At most this many addresses of one MX host are probed. */
  maxAddressesPerMx: number;
}

export const CHECK_DEFAULTS = {
  /** Whole STARTTLS conversation per address; greeting delays (postscreen) can take several seconds. */
  smtp_timeout_ms: 30_000,
  probe_concurrency: 8,
  max_addresses_per_mx: 4,
} as const;

/** Everything `check` needs, built from the daemon's config (`dns.*`, `fetch.*`). */
export function assembleCheck(config: Config, smtpTimeoutMs: number): { deps: CheckDeps; options: CheckOptions; close(): Promise<void> } {
  const { dns, fetcher, extraCaPem } = networkFromConfig(config);
  const secureDns = createSecureDnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout_ms, tries: config.dns.tries });
  const dane: CheckDane = { resolver: new DaneResolver(secureDns, { maxEntries: 1 }), validation: () => detectValidation(secureDns) };
  // RFC 5321 §4.1.1.1: EHLO names the client; the host name is the honest answer.
  const probe = createStartTlsProber({ extraCaPem, timeoutMs: smtpTimeoutMs, ehloName: hostname() || 'localhost' });
  return {
    deps: { dns, fetcher, probe, now: Date.now, dane },
    options: {
      allowPrivateAddresses: config.fetch.allow_private_addresses,
      probeConcurrency: CHECK_DEFAULTS.probe_concurrency,
      maxAddressesPerMx: CHECK_DEFAULTS.max_addresses_per_mx,
    },
    close: () => fetcher.close(),
  };
}

interface MxWork {
  host: string;
  addresses: Promise<Lookup<Address[]>>;
  /** Probe per usable address, started as soon as the addresses are known. */
  probes: Promise<Array<{ address: string; result: Promise<StartTlsProbe> }>>;
}

/**
 * Runs the checklist for `domain` (already normalised: lower-case A-labels, no trailing dot). Yields
 * progress messages and steps; returns the report (steps, overall status, advice).
 */
export async function* runCheck(domain: string, deps: CheckDeps, options: CheckOptions): AsyncGenerator<CheckEvent, CheckReport> {
  const steps: Step[] = [];
  const emit = (step: Step): CheckEvent => {
    steps.push(step);
    return { type: 'step', step };
  };
  const limit = new ConcurrencyLimit(options.probeConcurrency);

  // The slow part starts first, in the background; its results are reported after the policy.
  const mxAnswer = settle(deps.dns.mx(domain));
  const mxWork = mxAnswer.then((answer) => judgeMxRecords(domain, answer).hosts.map((host) => startMxWork(host, deps, options, limit)));
  // RFC 7672: DANE, in the background too (never rejects).
  const dane = deps.dane ? daneWork(domain, deps.dane) : undefined;

  // RFC 8461 §3.1: the TXT record.
  yield { type: 'progress', message: `looking up ${RFC8461.TXT_PREFIX}${domain} TXT` };
  const txt = judgeStsTxt(domain, await settle(deps.dns.txt(RFC8461.TXT_PREFIX + domain)), deps.now());
  yield emit(txt.step);

  // RFC 8460 §3: the TLS-RPT record.
  yield { type: 'progress', message: `looking up ${TLSRPT_PREFIX}${domain} TXT` };
  yield emit(judgeTlsRpt(domain, await settle(deps.dns.txt(TLSRPT_PREFIX + domain))));

  // RFC 8461 §3.3: the policy host, then the policy. Fetched even without a TXT record: serving the
  // policy before publishing the record is the right order (RFC 8461 §8.1).
  const policyHost = RFC8461.POLICY_HOST_PREFIX + domain;
  yield { type: 'progress', message: `looking up ${policyHost} A/AAAA` };
  const hostStep = judgePolicyHostDns(domain, await settle(deps.dns.addresses(policyHost)), options.allowPrivateAddresses);
  yield emit(hostStep);
  let policy: Policy | undefined;
  if (hostStep.status !== 'fail') {
    yield { type: 'progress', message: `fetching https://${policyHost}${RFC8461.POLICY_PATH}` };
    const outcome = await fetchPolicy(deps.fetcher, domain);
    for (const s of judgePolicyFetch(domain, outcome)) yield emit(s);
    if (outcome.ok || outcome.reason === 'parse') {
      const judged = judgePolicy(outcome.ok ? outcome.text : { error: outcome.message });
      yield emit(judged.step);
      policy = judged.policy;
    }
  }

  // RFC 8461 §4: every MX host.
  yield { type: 'progress', message: `looking up ${domain} MX` };
  yield emit(judgeMxRecords(domain, await mxAnswer).step);
  const daneFound = dane ? await dane : undefined;
  if (daneFound?.result) {
    yield { type: 'progress', message: `looking up TLSA records of ${domain}'s MX hosts (DNSSEC)` };
    yield emit(judgeDane(daneFound.result, daneFound.validation));
  } else if (daneFound) {
    // The checker's resolver, not the domain, is why: no step (nothing for the domain owner to fix).
    yield { type: 'progress', message: `DANE not checked: the resolver does not validate DNSSEC (${daneFound.validation.detail})` };
  }
  for (const work of await mxWork) {
    const daneHost = daneFound?.result?.hosts.find((h) => h.name === work.host.replace(/\.$/, '').toLowerCase());
    // RFC 8461 §4.1 matching needs the policy's mx patterns; "none" has nothing to match.
    if (policy && policy.mode !== 'none') yield emit(judgeMxCovered(work.host, policy));
    yield { type: 'progress', message: `looking up ${work.host} A/AAAA` };
    yield emit(judgeMxDns(work.host, await work.addresses, options.allowPrivateAddresses).step);
    if (daneHost) yield emit(judgeMxTlsa(daneHost));
    for (const { address, result } of await work.probes) {
      yield { type: 'progress', message: `probing ${work.host} (${address}) port 25: STARTTLS and certificate` };
      const probe = await result;
      for (const s of judgeProbe(work.host, address, probe, deps.now())) yield emit(s);
      const match = daneHost ? judgeTlsaMatch(daneHost, address, probe) : undefined;
      if (match) yield emit(match);
    }
  }

  return summarize(domain, steps, advise({ domain, steps, now: deps.now(), ...(policy ? { policy } : {}) }));
}

/** The DANE resolution, unless the resolver does not validate (then only the reason). */
async function daneWork(domain: string, dane: CheckDane): Promise<{ result: DaneResult | undefined; validation: ValidationStatus }> {
  const validation = await dane.validation();
  if (!validation.validates) return { result: undefined, validation };
  return { result: await dane.resolver.resolve(domain), validation };
}

function startMxWork(host: string, deps: CheckDeps, options: CheckOptions, limit: ConcurrencyLimit): MxWork {
  const addresses = settle(deps.dns.addresses(host));
  const probes = addresses.then((answer) => {
    const usable = judgeMxDns(host, answer, options.allowPrivateAddresses).usable.slice(0, options.maxAddressesPerMx);
    return usable.map((address) => ({
      address,
      // The prober never rejects; the catch only keeps a bug from becoming an unhandled rejection.
      result: limit.run(() => deps.probe(host, address)).catch((err: unknown): StartTlsProbe => ({ kind: 'broken', stage: 'connect', error: String(err) })),
    }));
  });
  return { host, addresses, probes };
}

/** A DNS answer, or its failure as data (the judge reports it; it never ends the check). */
async function settle<T>(lookup: Promise<T>): Promise<Lookup<T>> {
  try {
    return await lookup;
  } catch (err) {
    if (isStsError(err)) return { kind: 'error', message: err.message };
    return { kind: 'error', message: (err as Error).message };
  }
}

async function fetchPolicy(fetcher: Pick<PolicyFetcher, 'fetch'>, domain: string): Promise<FetchOutcome> {
  try {
    const { text } = await fetcher.fetch(domain);
    return { ok: true, text, bytes: Buffer.byteLength(text, 'utf8') };
  } catch (err) {
    const reason: ReasonClass = isStsError(err) ? err.reason : 'connect';
    return { ok: false, reason, message: (err as Error).message, code: codeOf(err) };
  }
}

/** The first Node/OpenSSL error code along the cause chain (the fetcher keeps the original as cause). */
function codeOf(err: unknown): string {
  for (let e = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET') return code;
  }
  return '';
}

