/**
 * RFC 8461 §3.2 mx patterns and §4.1 MX host matching, and the LDH hostname rule they rest on.
 * Pure: no I/O.
 */
import { RFC8461 } from './rfc8461.js';
import { StsError } from '../errors.js';
import type { MxPattern, Policy } from './types.js';

// RFC 1123 §2.1 / RFC 5321 §4.1.2 sub-domain: letters, digits and hyphens, starting and ending with a
// letter or digit.
const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

/** One LDH label of at most 63 octets (RFC 1035 §2.3.4). */
export function isLdhLabel(label: string): boolean {
  return label.length <= RFC8461.LABEL_MAX_OCTETS && LDH_LABEL.test(label);
}

/**
 * Why `name` is not a hostname we accept, or undefined when it is one: LDH labels of 1-63 octets, at most
 * 253 octets in all, at least two labels (a bare TLD or `localhost` is never an MTA-STS domain or MX),
 * no trailing dot (RFC 5321 Domain has none). Labels are checked before their count, so a single label
 * that is itself malformed reports the label problem.
 */
export function hostnameProblem(name: string): string | undefined {
  if (name === '') return 'empty name';
  // RFC 1035 §2.3.4: 255 octets on the wire, so 253 in text without the trailing dot.
  if (name.length > RFC8461.DOMAIN_MAX_OCTETS) return `longer than ${RFC8461.DOMAIN_MAX_OCTETS} octets`;
  const labels = name.split('.');
  for (const [i, label] of labels.entries()) {
    if (label === '') return i === labels.length - 1 ? 'trailing dot' : 'empty label';
    if (label.length > RFC8461.LABEL_MAX_OCTETS) return `label longer than ${RFC8461.LABEL_MAX_OCTETS} octets`;
    if (!LDH_LABEL.test(label)) return `label ${JSON.stringify(label)} is not letters, digits, inner hyphens`;
  }
  if (labels.length < 2) return 'single label';
  return undefined;
}

/** The LDH hostname rule of hostnameProblem, as a predicate. */
export function isHostname(name: string): boolean {
  return hostnameProblem(name) === undefined;
}

/** An `mx:` value as read from a policy: the pattern, and whether one final "." was forgiven to read it. */
export interface MxValue {
  pattern: MxPattern;
  /** The value ended in one "." (an absolute DNS name): a deviation the policy parser reports. */
  trailingDot: boolean;
}

/**
 * Parses an `mx:` value. Throws StsError('parse').
 *
 * RFC 8461 §3.2 takes Domain from RFC 5321, which has no trailing dot; one final "." is forgiven all the
 * same (`mx1.example.net.`, `*.example.net.`), because it names the same host in DNS presentation form
 * (RFC 1035 §5.1) and publishers paste it from zone files (docs/decisions.md). Two dots are an empty label.
 */
export function parseMxValue(value: string): MxValue {
  // RFC 8461 §3.2: sts-policy-mx-value = ["*."] Domain
  const wildcard = value.startsWith('*.');
  let domain = wildcard ? value.slice(2) : value;
  // Forgiven: one trailing dot, as in a zone file. Only after a name ("." alone or "*." stays empty).
  const trailingDot = domain.length > 1 && domain.endsWith('.');
  if (trailingDot) domain = domain.slice(0, -1);
  // RFC 8461 §3.2: the wildcard is only ever the whole leftmost label.
  if (domain.includes('*')) {
    throw new StsError('parse', `mx ${show(value)}: "*" only as a whole leftmost label "*."`);
  }
  // RFC 8461 §3.2: Domain as in RFC 5321, which is A-labels only (U-labels fail the LDH rule).
  const problem = hostnameProblem(domain);
  if (problem !== undefined) {
    const why = trailingDot && problem === 'trailing dot' ? 'more than one trailing dot' : problem;
    throw new StsError('parse', `mx ${show(value)}: ${why}`);
  }
  // RFC 8461 §4.1: matching is case-insensitive, so store the canonical lower case.
  return { pattern: { wildcard, domain: asciiLower(domain) }, trailingDot };
}

/** RFC 8461 §4.1: does MX host `host` (as found in DNS) match `pattern`? */
export function mxMatches(pattern: MxPattern, host: string): boolean {
  // RFC 8461 §4.1: case-insensitive; a trailing dot (an absolute DNS name) names the same host.
  let name = asciiLower(host);
  if (name.endsWith('.')) name = name.slice(0, -1);
  const domain = asciiLower(pattern.domain);
  if (!pattern.wildcard) return name === domain;
  // RFC 8461 §4.1: "*.example.net" matches exactly one extra leftmost label: "mx1.example.net", but neither
  // "example.net" nor "a.b.example.net".
  if (!name.endsWith(`.${domain}`)) return false;
  const first = name.slice(0, name.length - domain.length - 1);
  return first !== '' && !first.includes('.');
}

/** RFC 8461 §4.1: is `host` one of the policy's allowed MX hosts? */
export function policyAllowsMx(policy: Policy, host: string): boolean {
  return policy.mx.some((pattern) => mxMatches(pattern, host));
}

/** ASCII-only lower case: DNS case-insensitivity covers A-Z only (RFC 4343 §3). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

function show(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

/** The RFC 8461 text form of a pattern (`*.example.net`). */
export function patternText(p: MxPattern): string {
  return p.wildcard ? `*.${p.domain}` : p.domain;
}
