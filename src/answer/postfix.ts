/**
 * What Postfix is told, as socketmap(5) reply payloads (the netstring framing is the server's job).
 * This file is the only place that writes `OK ...`, `NOTFOUND ` or `PERM ...` for Postfix.
 */
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
}

// socketmap(5): "NOTFOUND" followed by a space and an empty reason.
export const NOTFOUND = 'NOTFOUND ';

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

export function postfixReply(verdict: Verdict, options: AnswerOptions): string {
  if (verdict.kind === 'none') return NOTFOUND;
  const { policy } = verdict;
  const enforced = policy.mode === 'enforce' || (policy.mode === 'testing' && options.strictTesting);
  if (!enforced || policy.mx.length === 0) return NOTFOUND;
  // servername=hostname: SNI is the MX host name (RFC 8461 §4.2 requires the certificate to match it).
  let reply = `OK secure match=${policy.mx.map(postfixMatch).join(':')} servername=hostname`;
  if (options.tlsrpt) reply += ' ' + tlsrptAttributes(verdict.domain, policy, verdict.text);
  return reply;
}

/**
 * Postfix 3.10 TLSRPT_README: `policy_type=sts policy_domain=D mx_host_pattern=P... { policy_string = L }...`.
 * Each non-empty policy line becomes one policy_string; whitespace-only lines carry nothing.
 */
function tlsrptAttributes(domain: string, policy: Policy, text: string): string {
  const parts = ['policy_type=sts', `policy_domain=${domain}`];
  for (const p of policy.mx) parts.push(`mx_host_pattern=${patternText(p)}`);
  for (const line of text.split(/\r?\n/)) {
    const clean = line.trim();
    // `}` would end the attribute early in Postfix's parser; such a line cannot be passed on verbatim.
    if (clean !== '' && !clean.includes('}')) parts.push(`{ policy_string = ${clean} }`);
  }
  return parts.join(' ');
}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 500);
}
