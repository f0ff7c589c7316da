/**
 * What Postfix is told, as socketmap(5) reply payloads (the netstring framing is the server's job).
 * This file is the only place that writes `OK ...`, `NOTFOUND ` or `PERM ...` for Postfix.
 */
import { SOCKETMAP } from '../config/defaults.js';
import { patternText } from '../sts/mx.js';
import type { MxPattern, Policy } from '../sts/types.js';

/** What the resolver decided for one query, as plain data. */
export type Verdict =
  | { kind: 'policy'; domain: string; policy: Policy; text: string }
  | { kind: 'none' };

/** Per-zone switches that change the reply (config `zones.NAME`). */
export interface AnswerOptions {
  /** RFC 8461 §5: a testing policy is not enforced, unless the zone opts in. */
  strictTesting: boolean;
  /** Postfix >= 3.10: append TLSRPT attributes, which also make >= 3.10.5 apply §4.1 matching itself. */
  tlsrpt: boolean;
  /**
   * Longest reply payload in bytes (config socketmap.max_reply_bytes, Postfix's socketmap_max_reply);
   * default SOCKETMAP.MAX_REPLY_BYTES. postfixAnswer shortens a longer reply rather than send it.
   */
  maxReplyBytes?: number;
}

// socketmap(5): "NOTFOUND" followed by a space and an empty reason.
export const NOTFOUND = 'NOTFOUND ';

/**
 * What the DANE branch (src/resolver/dane.ts) found for the domain, as the answer needs it; `off` when
 * the zone's `dane` is `off` or the resolver does not validate (nothing DANE-related is known then).
 */
export type DaneVerdict = 'off' | 'dane-only' | 'dane' | 'none' | 'null-mx' | 'temp';

/** postconf(5) smtp_tls_policy_maps levels for DANE; Postfix then does its own TLSA lookups and checks. */
export const DANE_ONLY_REPLY = 'OK dane-only';
export const DANE_REPLY = 'OK dane';
/** The reason of the TEMP reply; Postfix logs it with the deferral. */
export const DANE_TEMP_REASON = 'DANE lookup failed; MTA-STS may not override DANE (RFC 8461 section 2)';

/**
 * The reply when DANE is considered, RFC 8461 §2 ("senders ... MUST NOT allow MTA-STS Policy validation
 * to override a failing DANE validation") with RFC 7672 §2.2 deciding where DANE applies
 * (docs/decisions.md "DANE first"):
 *
 *   dane-only  every MX host has usable TLSA records    -> `OK dane-only` (DANE or no delivery)
 *   dane       some MX host has TLSA records            -> `OK dane`      (DANE where it applies)
 *   none       DANE proven absent                       -> the MTA-STS answer, as without DANE
 *   null-mx    the domain takes no mail (RFC 7505)      -> the MTA-STS answer (Postfix bounces anyway)
 *   temp       a DANE lookup failed                     -> with an enforced MTA-STS policy `TEMP` (that
 *              answer would override DANE we could not rule out: defer until DNS answers); without one
 *              `NOTFOUND ` (we add nothing: Postfix applies its own level, its own DANE included, which
 *              meets the same failure and defers itself)
 *   off        the zone's `dane: off`, or the resolver does not validate -> the MTA-STS answer
 *
 * DANE replies carry no TLSRPT attributes: Postfix accepts only policy_type `sts` and `no-policy-found`
 * from a policy map (3.11 tlsrpt_wrapper.c), and reports DANE (`tlsa`) policies itself from the TLSA
 * records it looks up (TLSRPT_README: "supports TLSRPT for domains with DANE (Postfix built-in)").
 */
export function postfixDaneAnswer(dane: DaneVerdict, verdict: Verdict, options: AnswerOptions): PostfixAnswer {
  switch (dane) {
    case 'dane-only':
      return { reply: DANE_ONLY_REPLY };
    case 'dane':
      return { reply: DANE_REPLY };
    case 'temp': {
      const sts = postfixAnswer(verdict, options);
      return sts.reply === NOTFOUND ? sts : { reply: tempReply(DANE_TEMP_REASON) };
    }
    default:
      return postfixAnswer(verdict, options);
  }
}

/** socketmap(5): a permanent error the client should not retry. Reasons are one printable line. */
export function permReply(reason: string): string {
  return `PERM ${oneLine(reason)}`;
}

/** socketmap(5): a transient error. */
export function tempReply(reason: string): string {
  return `TEMP ${oneLine(reason)}`;
}

/**
 * Postfix `match=` form of an RFC 8461 mx pattern. Postfix's `.example.net` matches any depth of
 * subdomain, looser than §4.1's exactly-one-label `*.example.net`; docs/decisions.md records why this is
 * still the right translation (the certificate must still match the MX name, and Postfix >= 3.10.5 gets
 * the exact rule through mx_host_pattern).
 */
export function postfixMatch(p: MxPattern): string {
  return p.wildcard ? `.${p.domain}` : p.domain;
}

/** How a reply was made to fit Postfix's socketmap_max_reply, when it had to be (docs/decisions.md). */
export type Shortening =
  /** The TLSRPT attributes are left out; the enforce directive is whole. */
  | 'tlsrpt-dropped'
  /** `match=` lost only entries another entry already covers in Postfix's matching: same hosts. */
  | 'match-compacted'
  /** `match=` names parent domains of the policy's patterns: still verified TLS, to more hosts. */
  | 'match-widened'
  /** Not even parent domains fit: TLS is required, the certificate not checked. */
  | 'encrypt-only';

/** A reply, and whether it had to be shortened to fit. */
export interface PostfixAnswer {
  reply: string;
  shortened?: Shortening;
}

/** The reply payload for a verdict (postfixAnswer without the note on shortening). */
export function postfixReply(verdict: Verdict, options: AnswerOptions): string {
  return postfixAnswer(verdict, options).reply;
}

/** Whether the MTA must enforce `policy`: RFC 8461 §5, testing is report-only unless the zone opts in. */
export function isEnforced(policy: Policy, strictTesting: boolean): boolean {
  return policy.mode === 'enforce' || (policy.mode === 'testing' && strictTesting);
}

/**
 * The reply for a verdict, never longer than options.maxReplyBytes: Postfix refuses a longer one as a
 * table error ("PERM reply longer than ..."), and a table error defers the mail. What gives way first is
 * what costs least: the TLSRPT attributes (reports lose detail), then duplicate `match=` entries (no
 * loss), then the precision of `match=` (parent domains), and last the certificate check (`encrypt`).
 * Every step still lets every MX host the policy allows through, so no step defers mail by our mistake.
 */
export function postfixAnswer(verdict: Verdict, options: AnswerOptions): PostfixAnswer {
  if (verdict.kind === 'none') return { reply: NOTFOUND };
  const { policy } = verdict;
  if (!isEnforced(policy, options.strictTesting) || policy.mx.length === 0) return { reply: NOTFOUND };
  const limit = options.maxReplyBytes ?? SOCKETMAP.MAX_REPLY_BYTES;
  const matches = policy.mx.map(postfixMatch);
  const secure = secureReply(matches);
  if (options.tlsrpt) {
    const whole = `${secure} ${tlsrptAttributes(verdict.domain, policy, verdict.text)}`;
    if (fits(whole, limit)) return { reply: whole };
  }
  if (fits(secure, limit)) return options.tlsrpt ? { reply: secure, shortened: 'tlsrpt-dropped' } : { reply: secure };
  const compact = compactMatches(matches);
  if (fits(secureReply(compact), limit)) return { reply: secureReply(compact), shortened: 'match-compacted' };
  // Parent domains, from the deepest that fits down to two labels: never a top-level domain alone, which
  // any certificate of any site under it would match.
  const deepest = Math.max(...compact.map((m) => labelCount(m)));
  for (let depth = deepest - 1; depth >= MIN_WIDENED_LABELS; depth--) {
    const widened = secureReply(compactMatches(compact.map((m) => widen(m, depth))));
    if (fits(widened, limit)) return { reply: widened, shortened: 'match-widened' };
  }
  // Every MX host an enforce policy allows must offer STARTTLS (RFC 8461 §4.2), so requiring TLS still
  // delivers to each of them, and never in clear text.
  return { reply: ENCRYPT_REPLY, shortened: 'encrypt-only' };
}

// servername=hostname: SNI is the MX host name (RFC 8461 §4.2 requires the certificate to match it).
const secureReply = (matches: string[]): string => `OK secure match=${matches.join(':')} servername=hostname`;
/** The last resort of postfixAnswer: mandatory TLS, no certificate check (postconf(5) "encrypt"). */
const ENCRYPT_REPLY = 'OK encrypt';
/** A widened `match=` keeps at least a registered-domain-like suffix: `.example.net`, never `.net`. */
const MIN_WIDENED_LABELS = 2;

/** Postfix netstring_get refuses a payload only when it is longer than the limit. */
function fits(reply: string, limit: number): boolean {
  // Bytes are at least as many as UTF-16 units: most replies are decided without counting.
  return reply.length <= limit / 3 || Buffer.byteLength(reply) <= limit;
}

function labelCount(match: string): number {
  let n = 1;
  for (let i = match.startsWith('.') ? 1 : 0; i < match.length; i++) if (match.charCodeAt(i) === 0x2e) n++;
  return n;
}

/** A `match=` entry cut to its last `depth` labels, as a parent-domain entry (`.example.net`). */
function widen(match: string, depth: number): string {
  const name = match.startsWith('.') ? match.slice(1) : match;
  const labels = name.split('.');
  return labels.length > depth ? `.${labels.slice(-depth).join('.')}` : match;
}

/**
 * The `match=` entries without the ones another entry already covers, in their order. In Postfix's
 * matching (postconf(5) smtp_tls_secure_cert_match) `.example.net` covers every name below example.net,
 * but not example.net itself; so `mx1.example.net` and `.a.example.net` go when `.example.net` is there.
 */
export function compactMatches(matches: string[]): string[] {
  const parents = new Set(matches.filter((m) => m.startsWith('.')));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of matches) {
    if (seen.has(m) || coveredByParent(m, parents)) continue;
    seen.add(m);
    out.push(m);
  }
  return out;
}

/** Whether a strict parent domain of `match` is among `parents` (each `.suffix`). */
function coveredByParent(match: string, parents: Set<string>): boolean {
  // Every ".suffix" of the name below the match itself: at most 127 of them (RFC 1035 §2.3.4).
  for (let at = match.indexOf('.', 1); at >= 0; at = match.indexOf('.', at + 1)) {
    if (parents.has(match.slice(at))) return true;
  }
  return false;
}

/**
 * Postfix 3.10 TLSRPT_README: `policy_type=sts policy_domain=D mx_host_pattern=P... { policy_string = L }...`.
 * Each non-empty policy line becomes one policy_string, unless Postfix could not read it back (see
 * policyStringValue).
 */
function tlsrptAttributes(domain: string, policy: Policy, text: string): string {
  const parts = ['policy_type=sts', `policy_domain=${domain}`];
  for (const p of policy.mx) parts.push(`mx_host_pattern=${patternText(p)}`);
  // A UTF-8 byte order mark is no part of the first line (RFC 8461 §3.2 forgiven, docs/decisions.md).
  for (const line of text.replace(/^\ufeff/, '').split('\n')) {
    const value = policyStringValue(line);
    if (value !== undefined) parts.push(`{ policy_string = ${value} }`);
  }
  return parts.join(' ');
}

/**
 * One policy line as the value of `{ policy_string = ... }`, or undefined when it is empty or Postfix
 * could not read it back. Postfix 3.10+ smtp_tls_policy.c splits the reply with mystrtokq(", \t\r\n",
 * "{}") and unwraps `{...}` with extpar(): a `{` or `}` inside the value unbalances the braces and the
 * whole policy is "malformed attribute/value pair" (the mail is deferred). So such a line is left out,
 * as other MTA-STS daemons do (TLSRPT reports then quote the policy without it); so is a line holding a
 * control character other than HTAB, which the policy grammar has no use for and which must not reach
 * Postfix's C strings (NUL) or logs.
 */
export function policyStringValue(line: string): string | undefined {
  // split_nameval() trims ASCII blanks around the value; CR is the CRLF line end (RFC 8461 §3.2).
  const value = line.replace(/^[ \t\r]+|[ \t\r]+$/g, '');
  if (value === '') return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[{}\x00-\x08\x0a-\x1f\x7f]/.test(value)) return undefined;
  return value;
}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 500);
}
