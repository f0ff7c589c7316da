/**
 * The one certificate identity rule for every TLS peer we judge: the policy host (RFC 8461 §3.3) and,
 * in `check`, the MX hosts (RFC 8461 §4.2). Both ask for a certificate valid for the host "as described
 * in RFC 6125", whose successor RFC 9525 is what we apply:
 *
 * - Only subjectAltName DNS-IDs name the host. RFC 9525 §2 drops the CN-ID (RFC 6125 §6.4.4 let a
 *   client fall back to the subject's common name when no DNS-ID is present): a certificate naming the
 *   host only in its CN names nobody.
 * - RFC 9525 §6.3: comparison is case-insensitive (ASCII only: DNS-IDs are A-labels, RFC 5280
 *   §4.2.1.6), and a wildcard is honoured only as the complete left-most label, where it stands for
 *   exactly one label: `*.example.com` covers `mx.example.com`, not `example.com` nor
 *   `a.mx.example.com`. Partial wildcards (`m*.example.com`) and wildcards elsewhere match nothing.
 * - A wildcard needs at least two labels after it (`*.com` covers nothing), as browsers and OpenSSL do:
 *   no CA may issue one, and honouring it would make one certificate valid for a whole TLD.
 *
 * Pure: no I/O. `checkCertificateIdentity` has the shape of tls.connect's `checkServerIdentity`.
 */
import type { PeerCertificate } from 'node:tls';

/** RFC 9525 §6.3: the wildcard character, valid only as a whole left-most label. */
const WILDCARD_LABEL = '*';
/** Names listed in an error message at most; a certificate may carry hundreds. */
const MAX_NAMES_QUOTED = 10;
/** Node's text form of one subjectAltName entry: `DNS:name`, `IP Address:...`, `URI:...`, ... */
const DNS_PREFIX = 'DNS:';

/** Why a certificate does not identify a host, for callers that explain it (`check`). */
export type IdentityProblem =
  /** No subjectAltName DNS-ID at all: whatever the subject CN says, the certificate names no host. */
  | 'no-dns-id'
  /** DNS-IDs are present, and none of them is the host. */
  | 'mismatch';

/**
 * The subjectAltName DNS-IDs of a certificate as node:tls reports it (`subjectaltname`, the text
 * OpenSSL prints: `DNS:a.example, IP Address:192.0.2.1`). Node writes an entry whose value holds a
 * separator or a quote as a JSON string (`DNS:"a, DNS:b"`); that is read as one value, so a hostile name
 * can never split into a second, forged entry.
 */
export function certificateDnsIds(cert: Pick<PeerCertificate, 'subjectaltname'> | null | undefined): string[] {
  const text = cert?.subjectaltname;
  if (typeof text !== 'string' || text === '') return [];
  return splitAltNames(text)
    .filter((entry) => entry.startsWith(DNS_PREFIX))
    .map((entry) => entry.slice(DNS_PREFIX.length));
}

/** RFC 9525 §6.3: does one presented DNS-ID identify `host` (a host name, optionally with a trailing dot)? */
export function dnsIdMatches(host: string, dnsId: string): boolean {
  const reference = asciiLower(host.endsWith('.') ? host.slice(0, -1) : host);
  if (reference === null || reference === '' || reference.includes(WILDCARD_LABEL)) return false;
  const presented = asciiLower(dnsId);
  // RFC 5280 §4.2.1.6: a dNSName is in "preferred name syntax": no empty label, no absolute form.
  if (presented === null || presented === '' || presented.startsWith('.') || presented.endsWith('.') || presented.includes('..')) return false;
  const firstDot = presented.indexOf('.');
  if (firstDot > 0 && presented.slice(0, firstDot) === WILDCARD_LABEL) {
    const base = presented.slice(firstDot + 1);
    // RFC 9525 §6.3: "*" anywhere else in the identifier, or a one-label base: no match.
    if (base.includes(WILDCARD_LABEL) || !base.includes('.')) return false;
    const hostDot = reference.indexOf('.');
    // Exactly one label in place of the wildcard: a non-empty first label, then the base exactly.
    return hostDot > 0 && reference.slice(hostDot + 1) === base;
  }
  // Any other "*" (partial wildcard, or not left-most) makes the identifier match nothing.
  if (presented.includes(WILDCARD_LABEL)) return false;
  return presented === reference;
}

/** The problem with `dnsIds` as an identity for `host`, or undefined when one of them matches. */
export function identityProblem(host: string, dnsIds: readonly string[]): IdentityProblem | undefined {
  if (dnsIds.length === 0) return 'no-dns-id';
  return dnsIds.some((id) => dnsIdMatches(host, id)) ? undefined : 'mismatch';
}

/** True when the certificate's subjectAltName DNS-IDs identify `host` (its CN is never looked at). */
export function certificateMatches(host: string, cert: Pick<PeerCertificate, 'subjectaltname'> | null | undefined): boolean {
  return identityProblem(host, certificateDnsIds(cert)) === undefined;
}

/**
 * The failure a TLS client reports when the identity rule refuses a certificate. It keeps Node's code
 * for a name mismatch, so the fetch classifies it as `tls` and `check` explains it like any mismatch.
 */
export class CertificateIdentityError extends Error {
  override readonly name = 'CertificateIdentityError';
  readonly code = 'ERR_TLS_CERT_ALTNAME_INVALID';
  constructor(
    readonly host: string,
    readonly problem: IdentityProblem,
    readonly dnsIds: readonly string[],
  ) {
    super(describeProblem(host, problem, dnsIds));
  }
}

/** Human text for an identity problem, naming a bounded number of the certificate's DNS-IDs. */
export function describeProblem(host: string, problem: IdentityProblem, dnsIds: readonly string[]): string {
  if (problem === 'no-dns-id') {
    return `the certificate has no subjectAltName DNS-ID, so it names no host (a name in the subject CN only is not accepted, RFC 9525)`;
  }
  const shown = dnsIds.slice(0, MAX_NAMES_QUOTED).join(', ');
  const more = dnsIds.length > MAX_NAMES_QUOTED ? ` and ${dnsIds.length - MAX_NAMES_QUOTED} more` : '';
  return `${host} is not among the certificate's DNS-IDs (${shown}${more})`;
}

/** tls.connect `checkServerIdentity`: undefined when the certificate identifies `host`, else the error. */
export function checkCertificateIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const dnsIds = certificateDnsIds(cert);
  const problem = identityProblem(host, dnsIds);
  return problem === undefined ? undefined : new CertificateIdentityError(host, problem, dnsIds);
}

/** ASCII-only lower case; null when the text holds anything outside printable ASCII (never an A-label). */
function asciiLower(text: string): string | null {
  // Unicode case mapping would fold U+212A KELVIN SIGN onto "k": a look-alike must never compare equal.
  if (!/^[\x21-\x7e]*$/.test(text)) return null;
  return text.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** JSON string as Node writes an escaped subjectAltName value (no raw control characters). */
const JSON_STRING = /^"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/;

/**
 * Splits Node's subjectAltName text at ", " outside JSON-quoted parts. A quote that does not open a valid
 * JSON string makes the rest of the text one entry that names nothing we match (fail closed).
 */
function splitAltNames(text: string): string[] {
  const entries: string[] = [];
  let current = '';
  // Every turn moves `at` forward by at least one character, so this ends within text.length turns.
  for (let at = 0; at < text.length; ) {
    const sep = text.indexOf(', ', at);
    const quote = text.indexOf('"', at);
    if (quote >= 0 && (sep < 0 || quote < sep)) {
      current += text.slice(at, quote);
      const m = JSON_STRING.exec(text.slice(quote));
      if (!m) {
        // Unreadable quoting: keep it as text with the quote, which no host name can equal.
        current += text.slice(quote);
        break;
      }
      current += JSON.parse(m[0]) as string;
      at = quote + m[0].length;
    } else if (sep >= 0) {
      entries.push(current + text.slice(at, sep));
      current = '';
      at = sep + 2;
    } else {
      current += text.slice(at);
      break;
    }
  }
  entries.push(current);
  return entries;
}
