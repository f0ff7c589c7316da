/**
 * The checklist's judgement: what `check` found (DNS answers, the fetch outcome, STARTTLS probe facts),
 * turned into pass / warn / fail with a reason and a fix, and the advice for the next rollout step. Pure:
 * the network work is done in run-check.ts and src/net; `now` is passed in.
 *
 * The yardstick is "will a sender that applies RFC 8461 deliver here in enforce mode": in testing mode
 * the same problems are failures, because they are what would break delivery after the switch.
 */
import { DANE_TITLES } from './judge-dane.js';
import type { ReasonClass } from '../errors.js';
import type { Address, MxAnswer, TxtAnswer } from '../net/dns.js';
import { isPublicAddress } from '../net/address-filter.js';
import { identityProblem } from '../net/identity.js';
import type { CertificateFacts, StartTlsProbe } from '../net/starttls-probe.js';
import { RFC8461 } from '../sts/rfc8461.js';
import { hostnameProblem, mxMatches, patternText } from '../sts/mx.js';
import { diagnosePolicy, type PolicyDiagnosis } from '../sts/policy.js';
import { TLSRPT_PREFIX, ruaProblem, selectTlsRptRecord } from '../sts/tlsrpt.js';
import { SeveralRecordsError, selectStsRecord } from '../sts/txt.js';
import type { Policy } from '../sts/types.js';
import { isStsError } from '../errors.js';
import type { CheckReport, Status, Step, StepId } from './types.js';

export const JUDGE = {
  /** An MX certificate expiring within this many days is a warning (renewal has probably failed). */
  CERT_EXPIRY_WARN_DAYS: 14,
  /**
   * RFC 8461 §3.2 expects max_age "in the range of weeks or greater" (it is what protects the next
   * refresh, §10.2); in enforce mode under a day is a warning.
   */
  ENFORCE_MIN_MAX_AGE_SECONDS: 86_400,
  /** What the advice suggests: one week. */
  SUGGESTED_MAX_AGE_SECONDS: 604_800,
  /** Reply text from a server is cut to this many characters in reasons. */
  MAX_QUOTE: 160,
} as const;

const DAY_MS = 86_400_000;

export const TITLES: Record<StepId, string> = {
  txt: '_mta-sts TXT record',
  tlsrpt: 'TLS-RPT record',
  'policy-host-dns': 'policy host DNS',
  'policy-host-tls': 'policy host HTTPS',
  'policy-host-http': 'policy host response',
  policy: 'policy file',
  'mx-records': 'MX records',
  'mx-covered': 'MX covered by policy',
  'mx-dns': 'MX address',
  'mx-starttls': 'MX STARTTLS',
  'mx-certificate': 'MX certificate',
  'mx-tls-version': 'MX TLS version',
  ...DANE_TITLES,
};

/** A DNS answer, or the lookup's failure (SERVFAIL, timeout: StsError('dns') in src/net/dns.ts). */
export type Lookup<T> = T | { kind: 'error'; message: string };

/** What the policy fetch (src/net/policy-fetch.ts) gave: the body, or its reason class and code. */
export type FetchOutcome =
  | { ok: true; text: string; bytes: number }
  | { ok: false; reason: ReasonClass; message: string; code: string };

type Finding = { status: Status; reason: string; fix?: string };

function step(id: StepId, finding: Finding, extra: Partial<Step> = {}): Step {
  const out: Step = { id, title: TITLES[id], ...pick(extra, 'mx', 'address'), status: finding.status, reason: finding.reason };
  if (finding.status !== 'pass' && finding.fix) out.fix = finding.fix;
  if (extra.details) out.details = extra.details;
  return out;
}

function pick(extra: Partial<Step>, ...keys: Array<'mx' | 'address'>): Partial<Step> {
  const out: Partial<Step> = {};
  for (const k of keys) if (extra[k] !== undefined) out[k] = extra[k];
  return out;
}

const pass = (reason: string): Finding => ({ status: 'pass', reason });
const warn = (reason: string, fix: string): Finding => ({ status: 'warn', reason, fix });
const fail = (reason: string, fix: string): Finding => ({ status: 'fail', reason, fix });

/** A TXT id that is new today and fits RFC 8461 §3.1 sts-id (1*32 ALPHA / DIGIT): UTC YYYYMMDDhhmmss. */
export function suggestId(now: number): string {
  return new Date(now).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/* ------------------------------------------------------------------ DNS records */

/** RFC 8461 §3.1: exactly one `v=STSv1` TXT record at `_mta-sts.<domain>`, with a valid id. */
export function judgeStsTxt(domain: string, answer: Lookup<TxtAnswer>, now: number): { step: Step; id?: string } {
  const name = RFC8461.TXT_PREFIX + domain;
  const publish = `publish ${name}. TXT "v=STSv1; id=${suggestId(now)}" once the policy file is served (RFC 8461 §3.1)`;
  if (answer.kind === 'error') {
    return {
      step: step('txt', fail(`the TXT lookup of ${name} failed: ${answer.message}`, `make the domain's name servers answer for ${name}; senders treat a failed lookup as no policy`)),
    };
  }
  if (answer.kind !== 'records') return { step: step('txt', fail(`no TXT record at ${name}`, publish)) };
  const texts = answer.records.map((strings) => strings.join(''));
  try {
    const selected = selectStsRecord(answer.records);
    if (selected.kind === 'none') {
      return { step: step('txt', fail(`${texts.length} TXT record(s) at ${name}, none beginning with "v=STSv1;"`, publish), { details: { records: texts } }) };
    }
    const { record } = selected;
    return {
      step: step('txt', pass(`v=STSv1, id ${record.id}`), { details: { id: record.id, records: texts } }),
      id: record.id,
    };
  } catch (err) {
    if (!isStsError(err)) throw err;
    const several = err instanceof SeveralRecordsError;
    const fix = several
      ? `keep exactly one "v=STSv1; id=..." record at ${name}: with several, senders see no policy at all (RFC 8461 §3.1)`
      : `rewrite it as "v=STSv1; id=${suggestId(now)}" (id: 1-32 letters and digits, RFC 8461 §3.1)`;
    return { step: step('txt', fail(several ? err.message : `invalid record: ${err.message}`, fix), { details: { records: texts } }) };
  }
}

/** RFC 8460 §3: the `_smtp._tls.<domain>` TLS-RPT record, when published: syntax and rua URIs. */
export function judgeTlsRpt(domain: string, answer: Lookup<TxtAnswer>): Step {
  const name = TLSRPT_PREFIX + domain;
  const publish = `publish ${name}. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@${domain}" to receive senders' TLS failure reports (RFC 8460 §3)`;
  if (answer.kind === 'error') return step('tlsrpt', warn(`the TXT lookup of ${name} failed: ${answer.message}`, `make the name servers answer for ${name}`));
  if (answer.kind !== 'records') return step('tlsrpt', warn(`no TLS-RPT record at ${name}: nobody will tell you when delivery over TLS fails`, publish));
  const selected = selectTlsRptRecord(answer.records);
  if (selected.kind === 'none') return step('tlsrpt', warn(`no "v=TLSRPTv1;" record at ${name}`, publish));
  if (selected.kind === 'invalid') {
    const fix = `publish exactly one record of the form "v=TLSRPTv1; rua=mailto:tlsrpt@${domain}" (several URIs comma-separated; "," and "!" inside a URI percent-encoded; RFC 8460 §3)`;
    return step('tlsrpt', fail(`senders ignore it: ${selected.error}`, fix), { details: selected.text ? { record: selected.text } : {} });
  }
  const { record, text } = selected;
  const problems = record.rua.map((uri) => [uri, ruaProblem(uri)] as const).filter(([, p]) => p !== undefined);
  const details = { record: text, rua: record.rua };
  if (problems.length === 0) return step('tlsrpt', pass(`reports go to ${record.rua.join(', ')}`), { details });
  const listed = problems.map(([uri, p]) => `${uri}: ${p}`).join('; ');
  const fix = 'use mailto:address or https://host/path URIs (RFC 8460 §3)';
  // Reports still arrive at the good URIs, so a partly bad list is a warning.
  if (problems.length === record.rua.length) return step('tlsrpt', fail(`no usable rua URI: ${listed}`, fix), { details });
  return step('tlsrpt', warn(`some rua URIs cannot receive reports: ${listed}`, fix), { details });
}

/* ------------------------------------------------------------------ policy host */

/** RFC 8461 §3.3: `mta-sts.<domain>` must resolve, to addresses senders will connect to. */
export function judgePolicyHostDns(domain: string, answer: Lookup<Address[]>, allowPrivate: boolean): Step {
  const host = RFC8461.POLICY_HOST_PREFIX + domain;
  if (!Array.isArray(answer)) {
    return step('policy-host-dns', fail(`${host} does not resolve: ${answer.message}`, `publish A (and/or AAAA) records for ${host} pointing at the web server that serves the policy (RFC 8461 §3.3)`));
  }
  return addressStep('policy-host-dns', host, answer, allowPrivate, {}).step;
}

function addressStep(id: 'policy-host-dns' | 'mx-dns', host: string, addresses: Address[], allowPrivate: boolean, extra: Partial<Step>): { step: Step; usable: string[] } {
  const all = addresses.map((a) => a.address);
  const refused = allowPrivate ? [] : all.filter((a) => !isPublicAddress(a));
  const usable = all.filter((a) => !refused.includes(a));
  const details = { addresses: all, ...(refused.length > 0 ? { refused } : {}) };
  const fix = `point ${host} at globally reachable addresses only`;
  if (usable.length === 0) {
    return { step: step(id, fail(`${host} resolves only to non-public addresses (${refused.join(', ')}): senders will not connect`, fix), { ...extra, details }), usable };
  }
  if (refused.length > 0) {
    return { step: step(id, warn(`${host} resolves to ${all.join(', ')}; ${refused.join(', ')} not public`, fix), { ...extra, details }), usable };
  }
  // mx-dns steps already name the MX host.
  const subject = id === 'mx-dns' ? 'resolves' : `${host} resolves`;
  return { step: step(id, pass(`${subject} to ${all.join(', ')}`), { ...extra, details }), usable };
}

/**
 * RFC 8461 §3.3 fetch, judged from the fetcher's reason class: the connection steps (certificate valid
 * for mta-sts.<domain>, TLS >= 1.2) and the response (200, no redirect, text/plain, size). Returns the
 * steps that could be judged: a failed connection leaves the response unjudged.
 */
export function judgePolicyFetch(domain: string, outcome: FetchOutcome): Step[] {
  const host = RFC8461.POLICY_HOST_PREFIX + domain;
  const url = `https://${host}${RFC8461.POLICY_PATH}`;
  const tlsOk = step('policy-host-tls', pass(`certificate valid for ${host}, TLS 1.2 or newer`));
  if (outcome.ok) {
    return [tlsOk, step('policy-host-http', pass(`200, text/plain, ${outcome.bytes} bytes`), { details: { url, bytes: outcome.bytes } })];
  }
  const details = { url, reason: outcome.reason, ...(outcome.code ? { code: outcome.code } : {}), message: outcome.message };
  switch (outcome.reason) {
    case 'http-status': {
      const redirect = /redirect to/.test(outcome.message);
      const fix = redirect
        ? `serve the policy at ${url} itself: senders do not follow redirects (RFC 8461 §3.3)`
        : `answer GET ${url} with 200 and the policy (RFC 8461 §3.3)`;
      return [tlsOk, step('policy-host-http', fail(tail(outcome.message, url), fix), { details })];
    }
    case 'content-type':
      return [tlsOk, step('policy-host-http', fail(tail(outcome.message, url), 'serve the policy as Content-Type: text/plain (RFC 8461 §3.3)'), { details })];
    case 'size':
      return [tlsOk, step('policy-host-http', fail(tail(outcome.message, url), `keep the policy under ${RFC8461.POLICY_MAX_BYTES} bytes (RFC 8461 §3.3)`), { details })];
    case 'parse':
      // The response arrived; its body is judged as the policy.
      return [tlsOk, step('policy-host-http', pass('200, text/plain'), { details: { url } })];
    default:
      return [step('policy-host-tls', policyTlsFinding(host, outcome), { details })];
  }
}

function policyTlsFinding(host: string, outcome: Extract<FetchOutcome, { ok: false }>): Finding {
  const code = outcome.code;
  const cert = (reason: string, fix: string) => fail(`certificate ${reason} (${code})`, fix);
  switch (code) {
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return cert(`not valid for ${host}`, `get a certificate whose subjectAltName includes ${host} (RFC 8461 §3.3)`);
    case 'CERT_HAS_EXPIRED':
      return cert('expired', `renew the certificate of ${host}`);
    case 'CERT_NOT_YET_VALID':
      return cert('not yet valid', `check the server clock and the certificate of ${host}`);
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return cert('self-signed', `use a certificate from a public CA for ${host} (RFC 8461 §3.3)`);
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_UNTRUSTED':
      return cert('does not chain to a trusted root', `serve the full chain (certificate and intermediates) from a public CA for ${host}`);
  }
  if (/PROTOCOL|NO_PROTOCOLS|UNSUPPORTED|VERSION_TOO_LOW/.test(code) && !/WRONG_VERSION_NUMBER/.test(code)) {
    return fail(`no TLS 1.2 or newer (${code})`, `enable TLS 1.2 and 1.3 on ${host} (RFC 8996; RFC 8461 §3.3 fetches over HTTPS with current TLS)`);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') return fail(`no TLS on port 443 (${code}): plain HTTP?`, `serve HTTPS on port 443 of ${host} (RFC 8461 §3.3)`);
  const url = `https://${host}${RFC8461.POLICY_PATH}`;
  const what = code || tail(outcome.message, url);
  switch (outcome.reason) {
    case 'tls':
      return fail(`TLS failed: ${what}`, `fix HTTPS on ${host}: a certificate from a public CA valid for ${host}, TLS 1.2 or newer (RFC 8461 §3.3)`);
    case 'timeout':
      return fail(`timed out (${what})`, `make ${host} answer HTTPS on port 443 promptly`);
    case 'address':
    case 'dns':
      return fail(outcome.message, `publish public A/AAAA records for ${host}`);
    default:
      return fail(`cannot connect to ${host}:443 (${what})`, `serve HTTPS on port 443 of ${host}, reachable from the internet (RFC 8461 §3.3)`);
  }
}

/** The part of a fetch error message after the URL (the step already names the host). */
function tail(message: string, url: string): string {
  return message.startsWith(`${url}: `) ? message.slice(url.length + 2) : message;
}

/* ------------------------------------------------------------------ policy */

/**
 * RFC 8461 §3.2 grammar, the mode, and max_age sanity. Every grammar problem is a failure; every deviation
 * the daemon forgives (src/sts/types.ts Deviation) is a warning with its line and fix, because stricter
 * senders refuse the whole policy over it.
 */
export function judgePolicy(body: string | { error: string }): { step: Step; policy?: Policy } {
  const text = typeof body === 'string' ? body : undefined;
  const grammarFix = 'follow the RFC 8461 §3.2 grammar: "version: STSv1", "mode: testing|enforce|none", "max_age: <seconds>", one "mx: <host or *.domain>" line per MX, LF or CRLF line ends';
  if (text === undefined) return { step: step('policy', fail((body as { error: string }).error, grammarFix)) };
  const diagnosis = diagnosePolicy(text);
  const forgiven = deviationFindings(diagnosis, text);
  const deviations = diagnosis.deviations.length > 0 ? { deviations: diagnosis.deviations } : {};
  const { policy } = diagnosis;
  if (policy === undefined) {
    const found = fail(diagnosis.problems.join('; '), grammarFix);
    return { step: step('policy', combine(found, forgiven), { details: { text, problems: diagnosis.problems, ...deviations } }) };
  }
  const mx = policy.mx.map(patternText);
  const details = { mode: policy.mode, max_age: policy.maxAge, mx, text, ...deviations };
  const summary = `mode ${policy.mode}, max_age ${policy.maxAge} s (${duration(policy.maxAge)})${mx.length ? `, mx ${mx.join(', ')}` : ''}`;
  let found: Finding = pass(summary);
  if (policy.mode === 'none') {
    found = warn(`${summary}: senders drop the policy`, 'if you are removing MTA-STS, keep serving this until every earlier max_age has passed (RFC 8461 §8.3); otherwise use mode: testing or enforce');
  } else if (policy.mode === 'enforce' && policy.maxAge < JUDGE.ENFORCE_MIN_MAX_AGE_SECONDS) {
    found = warn(
      `${summary}: under a day, so senders' cached policy lapses quickly and an attacker who blocks the refresh can strip TLS (RFC 8461 §10.2)`,
      `use a max_age of weeks (RFC 8461 §3.2), e.g. ${JUDGE.SUGGESTED_MAX_AGE_SECONDS}, then bump the TXT id`,
    );
  }
  return { step: step('policy', combine(found, forgiven), { details }), policy };
}

/** Why a forgiven deviation still matters to the domain owner: not every sender forgives it. */
const STRICT_SENDERS = 'strict senders such as mox treat this policy as missing';

/**
 * One warning per kind and place of forgiven deviation: the BOM, empty lines at the start, between fields
 * and at the end (consecutive lines named together), each mx value with a trailing dot.
 */
function deviationFindings(diagnosis: PolicyDiagnosis, text: string): Finding[] {
  const { deviations } = diagnosis;
  const findings: Finding[] = [];
  const lines = text.replace(/^\ufeff/, '').split('\n');
  // An empty line is at the start (end) when no line before (after) it has anything but WSP.
  const blank = (line: string) => /^[ \t]*\r?$/.test(line);
  const firstField = lines.findIndex((l) => !blank(l)) + 1;
  const lastField = lines.findLastIndex((l) => !blank(l)) + 1;
  const places: Record<'start' | 'end' | 'between', number[]> = { start: [], end: [], between: [] };
  for (const { rule, line } of deviations) {
    if (rule !== 'empty-line') continue;
    places[firstField === 0 || line < firstField ? 'start' : line > lastField ? 'end' : 'between'].push(line);
  }
  for (const d of deviations) {
    if (d.rule === 'bom') {
      findings.push(warn(`line ${d.line}: a UTF-8 byte order mark (BOM) before the first field`, `save the file as UTF-8 without a BOM: ${STRICT_SENDERS}`));
    } else if (d.rule === 'mx-trailing-dot') {
      const value = (lines[d.line - 1] ?? '').replace(/\r$/, '').replace(/^mx:[ \t]*/, '').trim();
      findings.push(warn(`line ${d.line}: mx value ${JSON.stringify(value)} ends in a dot`, `write it as "mx: ${value.replace(/\.$/, '')}", without the final dot: ${STRICT_SENDERS}`));
    }
  }
  for (const where of ['start', 'between', 'end'] as const) {
    const at = places[where];
    if (at.length === 0) continue;
    const one = at.length === 1;
    const place = where === 'between' ? 'between fields' : `at the ${where}`;
    findings.push(
      warn(
        `${one ? 'line' : 'lines'} ${lineList(at)}: empty ${one ? 'line' : 'lines'} ${place} (RFC 8461 §3.2 has a field on every line)`,
        `remove the empty ${one ? 'line' : 'lines'} ${place}: ${STRICT_SENDERS}`,
      ),
    );
  }
  return findings;
}

/** "3", "3-5", "2, 4, 6": runs of consecutive line numbers joined. */
function lineList(lines: number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < lines.length; ) {
    let j = i;
    while (j + 1 < lines.length && lines[j + 1] === lines[j]! + 1) j++;
    runs.push(i === j ? `${lines[i]}` : `${lines[i]}-${lines[j]}`);
    i = j + 1;
  }
  return runs.join(', ');
}

/** The step's one finding: the worst status, every reason and every distinct fix, in order. */
function combine(first: Finding, more: Finding[]): Finding {
  if (more.length === 0) return first;
  const all = [first, ...more];
  const status: Status = all.some((f) => f.status === 'fail') ? 'fail' : 'warn';
  const reason = all.filter((f) => f.status !== 'pass' || f === first).map((f) => f.reason).join('; ');
  const fixes = [...new Set(all.flatMap((f) => (f.fix ? [f.fix] : [])))];
  return { status, reason, fix: fixes.join('; ') };
}

function duration(seconds: number): string {
  if (seconds >= 86_400) return `${+(seconds / 86_400).toFixed(1)} d`;
  if (seconds >= 3_600) return `${+(seconds / 3_600).toFixed(1)} h`;
  return `${seconds} s`;
}

/* ------------------------------------------------------------------ MX */

/**
 * The MX hosts to check. RFC 8461 §4 validates the MX hosts senders choose; without MX records the domain
 * itself is the implicit MX (RFC 5321 §5.1); a null MX (RFC 7505) receives no mail at all.
 */
export function judgeMxRecords(domain: string, answer: Lookup<MxAnswer>): { step: Step; hosts: string[] } {
  if (answer.kind === 'error') {
    return { step: step('mx-records', fail(`the MX lookup of ${domain} failed: ${answer.message}`, `make the name servers answer MX queries for ${domain}`)), hosts: [] };
  }
  if (answer.kind === 'nxdomain') {
    return { step: step('mx-records', fail(`${domain} does not exist in DNS`, `publish the zone for ${domain} with MX records`)), hosts: [] };
  }
  if (answer.kind === 'nodata') {
    return {
      step: step('mx-records', warn(`no MX records: senders deliver to ${domain} itself (implicit MX, RFC 5321 §5.1)`, `publish MX records, and list those hosts in the policy`)),
      hosts: [domain],
    };
  }
  if (answer.records.length === 1 && answer.records[0]!.exchange === '') {
    return { step: step('mx-records', warn(`null MX: ${domain} accepts no mail (RFC 7505), so MTA-STS protects nothing`, 'remove the MTA-STS records, or publish real MX records')), hosts: [] };
  }
  const hosts = [...new Set(answer.records.map((r) => normalHost(r.exchange)))];
  const list = answer.records.map((r) => `${r.priority} ${normalHost(r.exchange)}`);
  return { step: step('mx-records', pass(list.join(', ')), { details: { mx: list } }), hosts };
}

function normalHost(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** RFC 8461 §4.1: the MX host must match one of the policy's mx patterns. */
export function judgeMxCovered(host: string, policy: Policy): Step {
  // RFC 1035 §3.3.9: an MX names a host; "192.0.2.1" reads as LDH labels, but no TLD is all digits.
  const problem = /\.[0-9]+$/.test(host) ? 'an address, or a numeric top-level label' : hostnameProblem(host);
  if (problem !== undefined) {
    return step('mx-covered', fail(`the MX target is not a host name (${problem})`, 'point MX records at host names (RFC 5321 §5.1)'), { mx: host });
  }
  const matched = policy.mx.find((p) => mxMatches(p, host));
  if (matched) return step('mx-covered', pass(`matches mx: ${patternText(matched)}`), { mx: host });
  // "*.parent" is worth suggesting only when the parent is itself below a TLD ("*.com" never is).
  const parent = host.slice(host.indexOf('.') + 1);
  const wildcard = parent.includes('.') ? ` (or "mx: *.${parent}")` : '';
  return step(
    'mx-covered',
    fail(`no mx pattern of the policy matches ${host}: senders refuse it in enforce mode (RFC 8461 §4.1)`, `add "mx: ${host}"${wildcard} to the policy, then bump the TXT id`),
    { mx: host },
  );
}

/** The MX host's addresses, filtered like the policy host's (no probing of private networks by default). */
export function judgeMxDns(host: string, answer: Lookup<Address[]>, allowPrivate: boolean): { step: Step; usable: string[] } {
  if (!Array.isArray(answer)) {
    return { step: step('mx-dns', fail(`${host} does not resolve: ${answer.message}`, `publish A (and/or AAAA) records for ${host}`), { mx: host }), usable: [] };
  }
  return addressStep('mx-dns', host, answer, allowPrivate, { mx: host });
}

/** RFC 8461 §4.2 and §5: STARTTLS, a certificate valid for the MX host, TLS 1.2 or newer. */
export function judgeProbe(host: string, address: string, probe: StartTlsProbe, now: number): Step[] {
  const at = { mx: host, address };
  const starttlsFix = `offer STARTTLS on port 25 of ${host} (Postfix: smtpd_tls_security_level = may with smtpd_tls_chain_files); senders in enforce mode refuse MX hosts without it (RFC 8461 §5)`;
  const reach = `accept SMTP connections on port 25 of ${address} from the internet`;
  switch (probe.kind) {
    case 'connect-failed':
      return [step('mx-starttls', fail(`cannot connect to port 25: ${probe.error}`, reach), at)];
    case 'timeout':
      return [step('mx-starttls', fail(`no answer in time (at the ${probe.stage} stage)`, reach), at)];
    case 'broken':
      return [step('mx-starttls', fail(`the connection broke at the ${probe.stage} stage: ${probe.error}`, reach), at)];
    case 'refused':
      return [step('mx-starttls', fail(`${probe.stage === 'banner' ? 'greeting' : `reply to ${probe.stage.toUpperCase()}`}: ${quote(probe.reply)}`, probe.stage === 'starttls' ? starttlsFix : reach), at)];
    case 'no-starttls':
      return [step('mx-starttls', fail('STARTTLS is not offered in the EHLO reply', starttlsFix), { ...at, details: { extensions: probe.extensions } })];
    case 'tls-failed':
      return [step('mx-starttls', fail(`STARTTLS offered, but the TLS handshake failed: ${probe.error}`, `fix the TLS setup of ${host}: a certificate and key that match, TLS 1.2 or newer`), at)];
    case 'tls':
      return [
        step('mx-starttls', pass('STARTTLS offered, handshake completed'), at),
        judgeCertificate(host, probe, now, at),
        judgeTlsVersion(probe.protocol, probe.cipher, at),
      ];
  }
}

function judgeCertificate(host: string, probe: Extract<StartTlsProbe, { kind: 'tls' }>, now: number, at: { mx: string; address: string }): Step {
  const cert = probe.certificate;
  if (cert === null) return step('mx-certificate', fail('no certificate presented', `install a certificate for ${host} from a public CA`), at);
  const findings: Finding[] = [];
  const renew = `renew the certificate of ${host}`;
  // Validity dates are judged from the dates themselves, so expiry reads the same whatever OpenSSL said first.
  const dateErrors = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
  if (!probe.authorized && !dateErrors.has(probe.authorizationError ?? '')) {
    const selfSigned = /SELF_SIGNED/.test(probe.authorizationError ?? '');
    findings.push(
      fail(
        selfSigned ? `self-signed (${probe.authorizationError})` : `does not chain to a trusted root (${probe.authorizationError ?? 'unknown'})`,
        selfSigned
          ? `use a certificate for ${host} from a public CA: senders require a chain to a trusted root (RFC 8461 §4.2)`
          : `serve the full chain (certificate and intermediates) from a public CA (RFC 8461 §4.2)`,
      ),
    );
  }
  // RFC 8461 §4.2 through RFC 9525: the MX host must be a subjectAltName DNS-ID (no CN fallback, wildcard
  // only as the whole left-most label): the same rule the policy fetch applies (src/net/identity.ts).
  const problem = identityProblem(host, cert.dnsNames);
  if (problem === 'no-dns-id') {
    findings.push(fail('no DNS names in subjectAltName', `get a certificate with ${host} in its subjectAltName (RFC 8461 §4.2)`));
  } else if (problem === 'mismatch') {
    findings.push(fail(`not valid for ${host} (names: ${cert.dnsNames.join(', ')})`, `get a certificate with ${host} in its subjectAltName, or point the MX record at a name the certificate covers (RFC 8461 §4.2)`));
  }
  const notAfter = Date.parse(cert.validTo);
  const notBefore = Date.parse(cert.validFrom);
  const daysLeft = Math.floor((notAfter - now) / DAY_MS);
  if (notAfter <= now) findings.push(fail(`expired on ${cert.validTo.slice(0, 10)}`, renew));
  else if (notBefore > now) findings.push(fail(`not valid before ${cert.validFrom}`, `check the certificate of ${host} and the server clock`));
  else if (notAfter - now < JUDGE.CERT_EXPIRY_WARN_DAYS * DAY_MS) {
    findings.push(warn(`expires in ${daysLeft} day(s), on ${cert.validTo.slice(0, 10)}`, `${renew} (is automatic renewal working?)`));
  }
  const details = certDetails(cert);
  if (findings.length === 0) {
    return step('mx-certificate', pass(`trusted, valid for ${host}, expires ${cert.validTo.slice(0, 10)} (${daysLeft} days)`), { ...at, details });
  }
  const status: Status = findings.some((f) => f.status === 'fail') ? 'fail' : 'warn';
  const fixes = [...new Set(findings.map((f) => f.fix!))];
  return step('mx-certificate', { status, reason: findings.map((f) => f.reason).join('; '), fix: fixes.join('; ') }, { ...at, details });
}

function certDetails(cert: CertificateFacts): Record<string, unknown> {
  return { subject: cert.subject, issuer: cert.issuer, dns_names: cert.dnsNames, not_before: cert.validFrom, not_after: cert.validTo, sha256: cert.fingerprint256 };
}

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); MTA-STS senders negotiate TLS 1.2 or newer. */
function judgeTlsVersion(protocol: string | null, cipher: string | null, at: { mx: string; address: string }): Step {
  const details = { protocol, cipher };
  if (protocol === 'TLSv1.3' || protocol === 'TLSv1.2') return step('mx-tls-version', pass(`${protocol}${cipher ? `, ${cipher}` : ''}`), { ...at, details });
  return step('mx-tls-version', fail(`negotiated ${protocol ?? 'an unknown version'}: TLS 1.0 and 1.1 are deprecated (RFC 8996)`, 'enable TLS 1.2 and 1.3 on the MX'), { ...at, details });
}

function quote(text: string): string {
  return JSON.stringify(text.length > JUDGE.MAX_QUOTE ? `${text.slice(0, JUDGE.MAX_QUOTE)}…` : text);
}

/* ------------------------------------------------------------------ advice and summary */

export interface AdviceInput {
  domain: string;
  steps: Step[];
  policy?: Policy;
  now: number;
}

/** The next rollout step(s), most important first (RFC 8461 §8.1 update order, §8.3 removal). */
export function advise({ domain, steps, policy, now }: AdviceInput): string[] {
  const statusOf = (id: StepId) => steps.find((s) => s.id === id)?.status;
  const anyFail = steps.some((s) => s.status === 'fail');
  const anyWarn = steps.some((s) => s.status === 'warn');
  const advice: string[] = [];
  const id = suggestId(now);

  if (!policy) {
    advice.push(
      `Serve the policy at https://${RFC8461.POLICY_HOST_PREFIX}${domain}${RFC8461.POLICY_PATH} first, in testing mode ` +
        `("version: STSv1", "mode: testing", "max_age: 86400", one "mx:" line per MX host), then publish the TXT record (RFC 8461 §3.2, §3.3).`,
    );
  } else if (statusOf('txt') !== 'pass') {
    advice.push(
      steps.find((s) => s.id === 'txt')?.reason.startsWith('no TXT record')
        ? `The policy is served: publish ${RFC8461.TXT_PREFIX}${domain}. TXT "v=STSv1; id=${id}" so that senders find it (RFC 8461 §3.1).`
        : `Fix the ${RFC8461.TXT_PREFIX}${domain} TXT record: until there is exactly one valid record, senders see no policy (RFC 8461 §3.1).`,
    );
  }
  if (statusOf('tlsrpt') !== 'pass') {
    advice.push(`Publish a valid TLS-RPT record (${TLSRPT_PREFIX}${domain}. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@${domain}"): its reports are how you learn what enforce mode would break (RFC 8460 §3).`);
  }
  if (policy?.mode === 'testing') {
    if (anyFail) {
      advice.push('Fix the failures above before switching to enforce: in enforce mode senders do not deliver to an MX that fails them (RFC 8461 §5).');
    } else {
      advice.push(
        `Testing mode is clean${anyWarn ? ' apart from the warnings above' : ''}. Once TLS-RPT reports are clean too, switch to "mode: enforce" ` +
          `with "max_age: ${JUDGE.SUGGESTED_MAX_AGE_SECONDS}" or more, then change the TXT id (e.g. id=${id}) so that senders fetch it (RFC 8461 §3.1, §5).`,
      );
    }
  } else if (policy?.mode === 'enforce') {
    advice.push(
      anyFail
        ? 'The policy is enforced and something fails: senders that apply MTA-STS defer mail to failing MX hosts now (RFC 8461 §5). Fix it, or go back to "mode: testing" (update the file, then the TXT id).'
        : `Enforced${anyWarn ? '; see the warnings above' : ' and clean'}. Renew the MX and policy host certificates before they expire.`,
    );
  } else if (policy?.mode === 'none') {
    advice.push(
      'Removing MTA-STS (RFC 8461 §8.3): keep serving "mode: none" until every earlier policy\'s max_age has passed since it was last served, then remove the TXT record and the policy host.',
    );
  }
  if (policy && statusOf('txt') === 'pass') {
    advice.push(`Whenever the policy changes, update the file first, then the TXT id (e.g. id=${id}): senders refetch only when the id changes (RFC 8461 §3.1, §8.1).`);
  }
  return advice;
}

/** Every step's status counted, and the worst of them as the overall status. */
export function summarize(domain: string, steps: Step[], advice: string[]): CheckReport {
  const counts: Record<Status, number> = { pass: 0, warn: 0, fail: 0 };
  for (const s of steps) counts[s.status] += 1;
  const status: Status = counts.fail > 0 ? 'fail' : counts.warn > 0 ? 'warn' : 'pass';
  return { domain, status, counts, steps, advice };
}
