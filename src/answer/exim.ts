/**
 * What Exim is told: one reply line of `key=value` pairs, read by the `${readsocket}` expansion and taken
 * apart with `${extract{key}{...}}` (Exim spec, chapter "String expansions"). This file is the only place
 * that writes Exim replies; the line protocol itself is src/server/exim/session.ts.
 *
 *   policy DOMAIN        -> mode=enforce mx="mx1.example.com *.example.net" id=20240101 max_age=86400
 *                           mode=none reason=no-record                     (no policy)
 *                           ... dane=yes | dane=no   (when the zone checks DANE: see eximDaneValue)
 *                           mode=none reason=not-a-hostname                (no domain to look up)
 *   mx DOMAIN MXHOST     -> allowed=yes mode=enforce mx="..."
 *                           allowed=yes mode=none reason=no-record         (no policy)
 *   a malformed request  -> error="..."   (not `policy DOMAIN` or `mx DOMAIN MXHOST`, timeout, failure)
 *
 * A reply that has no `mode` key is never an answer: the contrib Exim config defers on it.
 */
import type { LookupResult, NoPolicyWhy } from '../resolver/types.js';
import type { KeySkipReason } from '../sts/domain.js';
import { isHostname, patternText, policyAllowsMx } from '../sts/mx.js';
import type { Policy } from '../sts/types.js';
import type { DaneVerdict } from './postfix.js';

/**
 * What the resolver decided for one domain, as the Exim replies need it. A key with no policy to look up
 * (src/sts/domain.ts) is `none` with its KeySkipReason: an answer, never an error, since the contrib
 * router defers on an error and only a valid enforce policy may stop a delivery.
 */
export type EximVerdict =
  | { kind: 'policy'; id: string; policy: Policy }
  | { kind: 'none'; why: NoPolicyWhy | KeySkipReason };

/** Longest error reason we send; the daemon's log has the rest. */
const MAX_REASON_CHARS = 200;

export function eximVerdictOf(result: LookupResult): EximVerdict {
  if (result.kind === 'none') return { kind: 'none', why: result.why };
  return { kind: 'policy', id: result.entry.id, policy: result.entry.policy };
}

/**
 * Reply to `policy DOMAIN`: the policy's facts, or `mode=none` with the reason there is none; then, when
 * DANE was looked at (`dane` other than `off`), `dane=yes|no` (eximDaneValue).
 */
export function eximPolicyReply(verdict: EximVerdict, dane: DaneVerdict = 'off'): string {
  const daneKey: Array<[string, string]> = dane === 'off' ? [] : [['dane', eximDaneValue(dane)]];
  if (verdict.kind === 'none') return line([['mode', 'none'], ['reason', verdict.why], ...daneKey]);
  const { policy } = verdict;
  return line([
    ['mode', policy.mode],
    ['mx', mxList(policy)],
    ['id', verdict.id],
    ['max_age', String(policy.maxAge)],
    ...daneKey,
  ]);
}

/**
 * `dane=yes`: leave the domain to Exim's own DANE (`hosts_require_dane`), not to the MTA-STS MX list
 * (RFC 8461 §2). Yes where some MX host has TLSA records, and where a DANE lookup failed: DANE is then
 * not ruled out, and Exim's own DANE meets the same failure and defers instead of downgrading. No where
 * DANE is proven absent (or the domain takes no mail). Same rules as postfixDaneAnswer.
 */
export function eximDaneValue(dane: Exclude<DaneVerdict, 'off'>): 'yes' | 'no' {
  return dane === 'dane-only' || dane === 'dane' || dane === 'temp' ? 'yes' : 'no';
}

/**
 * Reply to `mx DOMAIN MXHOST`. `allowed=yes` unless the policy is `enforce` or `testing` and no mx
 * pattern matches the host by RFC 8461 §4.1 (exact names, `*.` covering exactly one label). A testing
 * policy is reported like an enforce one: whether to enforce it is the Exim router's choice (RFC 8461
 * §5 says not to), and a host that fails it is worth refusing once the router chose to.
 */
export function eximMxReply(verdict: EximVerdict, host: string): string {
  if (verdict.kind === 'none') return line([['allowed', 'yes'], ['mode', 'none'], ['reason', verdict.why]]);
  const { policy } = verdict;
  return line([
    ['allowed', yesNo(eximMxAllowed(verdict, host))],
    ['mode', policy.mode],
    ['mx', mxList(policy)],
  ]);
}

/** A request we will not answer; the connection closes after it. */
export function eximErrorReply(reason: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = reason.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, MAX_REASON_CHARS);
  return line([['error', clean]]);
}

/**
 * One value as `${extract}` reads it back unchanged (Exim expand.c expand_getkeyed + string_dequote):
 * an unquoted value runs to the next white space, and a value starting with `"` is dequoted with
 * backslash escapes. So a value that is empty, holds white space, `"` or `\`, is quoted, and inside the
 * quotes `\` and `"` are escaped. The set left bare is the one our values use (names, modes, numbers).
 */
export function eximValue(value: string): string {
  if (/^[A-Za-z0-9._*:@/+-]+$/.test(value)) return value;
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The `allowed` of eximMxReply: false only for an enforce or testing policy that no pattern of matches.
 * A `host` that is not a host name (an underscore, an empty label) matches no pattern: RFC 8461 §3.2
 * patterns are host names, and `*.` stands for one LDH label.
 */
export function eximMxAllowed(verdict: EximVerdict, host: string): boolean {
  // RFC 8461 §5: mode none means "no policy": nothing constrains the MX hosts; likewise no policy at all.
  if (verdict.kind === 'none' || verdict.policy.mode === 'none') return true;
  // An absolute name (one trailing dot) is the same host (RFC 8461 §4.1 compares names as found in DNS).
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return isHostname(name) && policyAllowsMx(verdict.policy, name);
}

/** RFC 8461 §3.2 patterns in their text form, space-separated (a list Exim can split with `<space`). */
function mxList(policy: Policy): string {
  return policy.mx.map(patternText).join(' ');
}

function yesNo(b: boolean): string {
  return b ? 'yes' : 'no';
}

/** The reply line, newline-terminated: `${readsocket}`'s eol argument can turn that into a space. */
function line(pairs: Array<[key: string, value: string]>): string {
  return pairs.map(([k, v]) => `${k}=${eximValue(v)}`).join(' ') + '\n';
}
