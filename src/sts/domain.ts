/**
 * From the lookup key an MTA sends (Postfix smtp_tls_policy_maps: the next-hop destination) to the domain
 * whose MTA-STS policy applies, or the reason none does. Pure: `domainToASCII` and `isIP` compute, they
 * do no I/O.
 *
 * A key that is no domain we could look up is never an error on the wire: Postfix defers mail on a
 * `PERM` from smtp_tls_policy_maps, and only a valid enforce policy may stop a delivery (DESIGN.md). So
 * every such key gets `NOTFOUND ` (Exim: `mode=none`) with one of KEY_SKIP_REASONS, a closed set that a
 * metric label and Exim's `reason=` can carry.
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { RFC8461 } from './rfc8461.js';
import { asciiLower, hostnameProblem, isLdhLabel } from './mx.js';

/** Why a key has no policy to look up (docs/decisions.md "Lookup keys"). */
export const KEY_SKIP_REASONS = [
  /** ".example.com": Postfix's parent-domain probe; RFC 8461 §4.1 policies cover the exact domain only. */
  'parent-probe',
  /** "[host]", "[host]:port": no MX lookup, so RFC 8461 §4 has no MX hosts to constrain. */
  'next-hop',
  /** "192.0.2.1", "[IPv6:2001:db8::1]", "192.0.2.1.": an address, no domain. */
  'address-literal',
  /** "localhost", a bare TLD: no domain can publish _mta-sts.<domain> there (RFC 8461 §3.1). */
  'single-label',
  /** More than 253 octets, or a label of more than 63 (RFC 1035 §2.3.4): no such name in the DNS. */
  'too-long',
  /** A U-label UTS #46 rejects (bad punycode, disallowed code points): no A-label to look up. */
  'bad-idn',
  /** Anything else that is no host name: "_" in a label, empty labels, spaces, a bad port, ... */
  'not-a-hostname',
] as const;
export type KeySkipReason = (typeof KEY_SKIP_REASONS)[number];

/** Keys MTA-STS does not apply to, though they are well-formed. */
type NotApplicable = 'parent-probe' | 'next-hop' | 'address-literal' | 'single-label';

export type DomainKey =
  | { kind: 'domain'; domain: string }
  | { kind: 'skip'; why: NotApplicable }
  /** Not a host name at all; `why` says how, for a person (the CLI, a debug log). */
  | { kind: 'invalid'; reason: KeySkipReason; why: string };

/** The closed-set reason of a key that has no policy to look up. */
export function keySkipReason(k: Exclude<DomainKey, { kind: 'domain' }>): KeySkipReason {
  return k.kind === 'skip' ? k.why : k.reason;
}

type Invalid = Extract<DomainKey, { kind: 'invalid' }>;

const skip = (why: NotApplicable): DomainKey => ({ kind: 'skip', why });
const invalid = (reason: KeySkipReason, why: string): Invalid => ({ kind: 'invalid', reason, why });
const notHostname = (why: string): Invalid => invalid('not-a-hostname', why);

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Any Unicode white space (SP, NBSP, IDEOGRAPHIC SPACE, ...).
const SPACE = /\s/u;
// Postfix next hop "[host]" or "[host]:port".
const BRACKETED = /^\[([^[\]]*)\](?::(.*))?$/;
// RFC 6335 §5.1 service name (Postfix accepts "host:smtp" as well as "host:25").
const SERVICE_NAME = /^[A-Za-z](?:[A-Za-z0-9-]{0,13}[A-Za-z0-9])?$/;

/** Normalises one lookup key. Never throws: bad keys come back as `invalid` with a reason class and a why. */
export function normalizeDomainKey(key: string): DomainKey {
  // What Postfix sends nearly always: already the normal form. Decided in one pass, same answer as below.
  if (isNormalLdhDomain(key)) return { kind: 'domain', domain: key };
  // Nothing to resolve.
  if (key === '') return notHostname('empty');
  // Control bytes never belong in a domain name, and must not reach logs raw.
  if (CONTROL.test(key)) return notHostname('control character');
  // White space never belongs in a domain name (RFC 1123 §2.1 LDH).
  if (SPACE.test(key)) return notHostname('white space');
  // Postfix probes parent domains as ".example.com"; RFC 8461 §4 policies cover the exact domain only.
  if (key.startsWith('.') && key !== '.') return skip('parent-probe');
  // "[...]" and "[...]:port" bypass the MX lookup; RFC 8461 §4 validates MX hosts, so MTA-STS does not apply.
  if (key.startsWith('[')) return bracketed(key);
  // A bare IPv4/IPv6 address is an address literal: no MX lookup, no _mta-sts TXT record.
  if (isIP(key) !== 0) return skip('address-literal');

  let host = key;
  const colon = key.lastIndexOf(':');
  if (colon >= 0) {
    // "domain:port" without brackets: Postfix still looks up the domain's MX records, so its policy applies.
    if (!isPort(key.slice(colon + 1))) return notHostname('bad port');
    host = key.slice(0, colon);
    // Only one colon: anything else is neither an IP address nor domain:port.
    if (host.includes(':')) return notHostname('colon in domain');
    // "192.0.2.1:25" is an address with a port: still no MX lookup.
    if (isIP(host) !== 0) return skip('address-literal');
  }

  const name = toAsciiName(host);
  if (name.kind !== 'domain') return name;
  // A single label (localhost, a bare TLD) is not a domain that can publish _mta-sts.<domain>.
  if (!name.domain.includes('.')) return skip('single-label');
  return name;
}

/**
 * True when `key` is a domain already in normal form: lower-case LDH labels of 1-63 octets (no leading or
 * trailing hyphen), at least two, at most 253 octets, no leading or trailing dot, and a last label that is
 * not all digits. For such a key every check of the general path passes (no control byte or space, not a
 * parent probe or next hop, not an IP address: an IPv4 address ends in digits, an IPv6 one has colons),
 * the A-label form is the key itself, and the result is `{ kind: 'domain', domain: key }`. Anything else
 * (upper case, a trailing dot, U-labels, a port, ...) goes the general way.
 */
function isNormalLdhDomain(key: string): boolean {
  const n = key.length;
  if (n === 0 || n > RFC8461.DOMAIN_MAX_OCTETS) return false;
  let labelStart = 0;
  let labels = 1;
  let allDigits = true;
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) {
      allDigits = false; // a-z
    } else if (c >= 0x30 && c <= 0x39) {
      // 0-9
    } else if (c === 0x2d) {
      // '-': not first or last in a label (the label end is checked at the dot or the end)
      if (i === labelStart) return false;
      allDigits = false;
    } else if (c === 0x2e) {
      // '.': ends a non-empty label of at most 63 octets that does not end with '-'
      if (i === labelStart || i - labelStart > RFC8461.LABEL_MAX_OCTETS || key.charCodeAt(i - 1) === 0x2d) return false;
      labels += 1;
      labelStart = i + 1;
      allDigits = true;
    } else {
      return false;
    }
  }
  if (labelStart === n || n - labelStart > RFC8461.LABEL_MAX_OCTETS || key.charCodeAt(n - 1) === 0x2d) return false;
  return labels >= 2 && !allDigits;
}

/** "[host]", "[host]:port", "[1.2.3.4]", "[IPv6:2001:db8::1]", "[2001:db8::1]:25". */
function bracketed(key: string): DomainKey {
  const m = BRACKETED.exec(key);
  // An unclosed bracket, text after "]" other than ":port", or nested brackets.
  if (m === null) return notHostname('malformed [next hop]');
  const inside = m[1] ?? '';
  const port = m[2];
  // A port after the brackets must be a port.
  if (port !== undefined && !isPort(port)) return notHostname('bad port');
  // "[]" names nothing.
  if (inside === '') return notHostname('empty [next hop]');
  // RFC 5321 §4.1.3: "[IPv6:...]" is the address-literal form of an IPv6 address.
  const address = /^ipv6:/i.test(inside) ? inside.slice(5) : inside;
  if (isIP(address) !== 0) return skip('address-literal');
  // Whatever names the host inside (one label from /etc/hosts, "relay_1.example.com" that only a local
  // resolver knows), Postfix connects to it without an MX lookup: nothing for a policy to constrain.
  return skip('next-hop');
}

/**
 * Lower-case A-label form of a host name without its trailing dot, or why it is not one. A single LDH
 * label passes; the caller decides what it means.
 */
function toAsciiName(host: string): DomainKey {
  // One trailing dot is the DNS root: "example.com." and "example.com" are the same domain.
  const bare = host.endsWith('.') ? host.slice(0, -1) : host;
  if (bare === '') return notHostname('empty');
  // "192.0.2.1." is an address written as an absolute name: still no domain.
  if (isIP(bare) !== 0) return skip('address-literal');
  // IDN: U-labels become A-labels (RFC 5891 §5 via UTS #46, as DNS and RFC 8461 §3.2 mx patterns use
  // A-labels). Pure-ASCII names skip the WHATWG host parser, which would turn "1.2.3" into 1.2.0.3.
  const ascii = /^[\x00-\x7f]*$/.test(bare) ? asciiLower(bare) : domainToASCII(bare);
  // domainToASCII returns "" for names UTS #46 rejects (bad punycode, disallowed characters).
  if (ascii === '') return invalid('bad-idn', 'not a valid internationalized domain name');
  // Full-width digits map to an IP address: a name in disguise is still not a domain.
  if (isIP(ascii) !== 0) return invalid('address-literal', 'IP address in Unicode form');
  if (!ascii.includes('.') && isLdhLabel(ascii)) return { kind: 'domain', domain: ascii };
  const tooLong = lengthProblem(ascii);
  if (tooLong !== undefined) return invalid('too-long', tooLong);
  const problem = hostnameProblem(ascii);
  if (problem !== undefined) return notHostname(problem);
  // RFC 3696 §2: no top-level domain is all-numeric, so "01.2.3.4" is a malformed address, not a domain.
  const tld = ascii.slice(ascii.lastIndexOf('.') + 1);
  if (/^[0-9]+$/.test(tld)) return notHostname('numeric top-level label');
  return { kind: 'domain', domain: ascii };
}

/** RFC 1035 §2.3.4: at most 253 octets in text (255 on the wire), labels of at most 63. */
function lengthProblem(name: string): string | undefined {
  if (name.length > RFC8461.DOMAIN_MAX_OCTETS) return `longer than ${RFC8461.DOMAIN_MAX_OCTETS} octets`;
  let labelStart = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i < name.length && name.charCodeAt(i) !== 0x2e) continue;
    if (i - labelStart > RFC8461.LABEL_MAX_OCTETS) return `label longer than ${RFC8461.LABEL_MAX_OCTETS} octets`;
    labelStart = i + 1;
  }
  return undefined;
}

/** A TCP port 1-65535, or a service name. */
function isPort(port: string): boolean {
  if (SERVICE_NAME.test(port)) return true;
  if (!/^[0-9]{1,5}$/.test(port)) return false;
  const n = Number(port); // safe: at most five ASCII digits
  return n >= 1 && n <= 65535;
}
