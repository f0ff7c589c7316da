/**
 * `check`'s DANE steps (RFC 7672), judged from the daemon's own DANE resolution (src/resolver/dane.ts):
 * the domain's state, each MX host's TLSA records (usable or not, and why), and whether the certificate
 * each MX address presents matches them. A DANE sender defers mail to a host whose TLSA records do not
 * match its certificate, whatever its MTA-STS policy says (RFC 8461 §2), so a mismatch is a `fail`.
 */
import { X509Certificate } from 'node:crypto';
import type { ValidationStatus } from '../net/secure-dns.js';
import type { StartTlsProbe } from '../net/starttls-probe.js';
import type { DaneHost, DaneResult } from '../resolver/dane.js';
import { tlsaText, type TlsaUnusable } from '../resolver/tlsa.js';
import { associationData, tlsaMatchesChain } from './tlsa-match.js';
import type { Status, Step, StepId } from './types.js';

export const DANE_TITLES = {
  dane: 'DANE (TLSA records)',
  'mx-tlsa': 'MX TLSA records',
  'mx-tlsa-match': 'MX certificate matches TLSA',
} as const satisfies Partial<Record<StepId, string>>;

const UNUSABLE_TEXT: Record<TlsaUnusable, string> = {
  'pkix-usage': 'PKIX-TA(0)/PKIX-EE(1) usage, which SMTP senders do not use (RFC 7672 §3.1.3)',
  'unknown-usage': 'unassigned certificate usage',
  'unknown-selector': 'unassigned selector',
  'unknown-matching-type': 'unassigned matching type',
  'bad-data-length': 'association data of the wrong length for its matching type',
};

const USABLE_FIX = 'publish DANE-EE(3) records, e.g. "3 1 1 <SHA-256 of the public key>", or DANE-TA(2) ones (RFC 7672 §3.1)';

function step(id: keyof typeof DANE_TITLES, status: Status, reason: string, extra: { fix?: string; mx?: string; address?: string; details?: Record<string, unknown> } = {}): Step {
  const out: Step = { id, title: DANE_TITLES[id], status, reason };
  if (extra.mx !== undefined) out.mx = extra.mx;
  if (extra.address !== undefined) out.address = extra.address;
  if (status !== 'pass' && extra.fix !== undefined) out.fix = extra.fix;
  if (extra.details !== undefined) out.details = extra.details;
  return out;
}

/** The domain's DANE state; `validation` says whether the resolver could tell at all. */
export function judgeDane(result: DaneResult | undefined, validation: ValidationStatus): Step {
  if (!validation.validates || result === undefined) {
    // The checker's own resolver, not the domain, is the reason: nothing for the domain owner to fix.
    return step('dane', 'pass', `not checked: the resolver does not validate DNSSEC (${validation.detail})`);
  }
  const hostsWith = (states: string[]) => result.hosts.filter((h) => states.includes(h.state)).map((h) => h.name);
  const details = { state: result.state, why: result.why };
  switch (result.why) {
    case 'all-usable':
      return step('dane', 'pass', 'every MX host has usable TLSA records: DANE senders require authenticated TLS', { details });
    case 'some-usable':
      return step('dane', 'warn', `only some MX hosts have usable TLSA records; not: ${hostsWith(['no-tlsa', 'insecure', 'unusable', 'temp', 'unchecked', 'no-address']).join(', ')}`, {
        fix: 'publish TLSA records for every MX host, so that DANE protects mail whichever host takes it',
        details,
      });
    case 'records-unusable':
      return step('dane', 'warn', 'TLSA records are published, but none is usable for SMTP: senders only require encryption', { fix: USABLE_FIX, details });
    case 'no-tlsa':
      return step('dane', 'pass', 'no TLSA records for any MX host (or not DNSSEC-signed): DANE does not apply, MTA-STS decides', { details });
    case 'insecure-mx':
      return step('dane', 'pass', 'the MX records are not DNSSEC-signed: DANE does not apply, MTA-STS decides', { details });
    case 'nxdomain':
      return step('dane', 'pass', 'the domain does not exist (authenticated denial)', { details });
    case 'null-mx':
      return step('dane', 'pass', 'null MX: the domain accepts no mail', { details });
    case 'mx-lookup-failed':
    case 'host-lookup-failed':
    case 'deadline':
      return step('dane', 'fail', `DNSSEC lookups fail (${result.detail ?? 'SERVFAIL'}): DANE senders defer mail, and MTA-STS cannot override that (RFC 8461 §2)`, {
        fix: 'fix the DNSSEC signatures (expired? DS matching the key?) or the name servers of the failing name',
        details,
      });
  }
}

/** One MX host's TLSA records. */
export function judgeMxTlsa(host: DaneHost): Step {
  const at = { mx: host.name };
  const records = host.records.map((r) => ({ record: tlsaText(r.record), usable: r.unusable === null, ...(r.unusable ? { why: UNUSABLE_TEXT[r.unusable] } : {}) }));
  const details = { ...(host.tlsaName ? { name: host.tlsaName } : {}), records };
  switch (host.state) {
    case 'usable': {
      const n = records.filter((r) => r.usable).length;
      return step('mx-tlsa', 'pass', `${n} of ${records.length} TLSA record(s) at ${host.tlsaName} usable`, { ...at, details });
    }
    case 'unusable':
      return step('mx-tlsa', 'warn', `TLSA records at ${host.tlsaName}, none usable: ${[...new Set(records.map((r) => r.why))].join('; ')}`, { ...at, fix: USABLE_FIX, details });
    case 'no-tlsa':
      return step('mx-tlsa', 'pass', 'no TLSA records (authenticated denial): DANE does not apply to this host', at);
    case 'insecure':
      return step('mx-tlsa', 'pass', 'its addresses or TLSA records are not DNSSEC-signed: DANE does not apply to this host', at);
    case 'no-address':
      return step('mx-tlsa', 'pass', 'no address, so no TLSA records looked up', at);
    case 'unchecked':
      return step('mx-tlsa', 'pass', 'not looked at (beyond the MX hosts checked for DANE)', at);
    case 'temp':
      return step('mx-tlsa', 'fail', `lookup failed (${host.detail ?? 'SERVFAIL'}): DANE senders skip this host`, { ...at, fix: 'fix the DNSSEC signatures or name servers of this host name' });
  }
}

/** Whether the certificate one MX address presented matches the host's usable TLSA records. */
export function judgeTlsaMatch(host: DaneHost, address: string, probe: StartTlsProbe): Step | undefined {
  if (host.state !== 'usable' || probe.kind !== 'tls' || probe.certificate === null) return undefined;
  const chain = probe.certificate.chainDer ?? [];
  const at = { mx: host.name, address };
  const usable = host.records.filter((r) => r.unusable === null).map((r) => r.record);
  const matching = usable.filter((r) => tlsaMatchesChain(r, chain));
  if (matching.length > 0) return step('mx-tlsa-match', 'pass', `matches ${matching.map(tlsaText).join(', ')}`, at);
  const presented = leafSpkiSha256(chain[0]);
  return step('mx-tlsa-match', 'fail', 'the certificate presented matches none of the usable TLSA records: DANE senders defer mail to this host, whatever MTA-STS says', {
    ...at,
    fix: `publish a TLSA record for the key in use${presented ? ` (3 1 1 ${presented})` : ''} next to the old one before changing keys, or serve the certificate the records name`,
    details: { tlsa: usable.map(tlsaText), ...(presented ? { presented_3_1_1: presented } : {}) },
  });
}

function leafSpkiSha256(der: Buffer | undefined): string | undefined {
  if (der === undefined) return undefined;
  try {
    return associationData(1, new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' })).toString('hex');
  } catch {
    return undefined;
  }
}
