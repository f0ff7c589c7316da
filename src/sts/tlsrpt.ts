/**
 * RFC 8460 §3: the TLS-RPT reporting policy, a TXT record at `_smtp._tls.<domain>`. An MTA-STS domain
 * publishes one to learn when senders fail to deliver over verified TLS (RFC 8461 §5 testing mode is
 * only useful with it).
 *
 *   tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim      = *WSP ";" *WSP
 *   tlsrpt-field     = tlsrpt-rua / tlsrpt-extension        ; tlsrpt-rua is required
 *   tlsrpt-version   = %s"v=TLSRPTv1"
 *   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
 *   tlsrpt-uri       = URI   ; RFC 3986; commas, "!" and ";" MUST be percent-encoded
 *   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
 *   tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * Pure: no I/O. Nothing here throws on bad input: `check` reports every problem as data.
 */
import { hostnameProblem } from './mx.js';
import { isExtName } from './txt.js';
import { match, scan, show } from './cursor.js';

export const TLSRPT_VERSION = 'TLSRPTv1';
/** RFC 8460 §3: the record lives at `_smtp._tls.<domain>`. */
export const TLSRPT_PREFIX = '_smtp._tls.';

export interface TlsRptRecord {
  version: typeof TLSRPT_VERSION;
  /** Every URI of every rua field, in order, as written. */
  rua: string[];
  /** Unknown fields, kept for display (RFC 8460 §3: "unknown fields SHALL be ignored"). */
  extensions: Array<[name: string, value: string]>;
}

export type TlsRptParse = { ok: true; record: TlsRptRecord } | { ok: false; error: string };

/** What the TXT lookup at `_smtp._tls.<domain>` says. */
export type TlsRptSelection =
  | { kind: 'none' }
  | { kind: 'record'; record: TlsRptRecord; text: string }
  | { kind: 'invalid'; error: string; text?: string };

const VERSION_FIELD = `v=${TLSRPT_VERSION}`;
// RFC 8460 §3 field-delim = *WSP ";" *WSP (WSP is SP / HTAB, RFC 5234 B.1).
const FIELD_DELIM = /[ \t]*;[ \t]*/y;
const URI_DELIM = /[ \t]*,[ \t]*/y;
const NAME_CHARS = /[A-Za-z0-9_.-]*/y;
// RFC 8460 §3 tlsrpt-ext-value: VCHAR except ";" (0x3B) and "=" (0x3D).
const EXT_VALUE = /[\x21-\x3a\x3c\x3e-\x7e]*/y;
// RFC 3986 §2: unreserved, gen-delims, sub-delims and "%" (checked as pct-encoded below), minus the
// "," "!" ";" that RFC 8460 §3 requires to be percent-encoded.
const URI_CHARS = /[A-Za-z0-9\-._~:/?#[\]@$&'()*+=%]*/y;
// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":".
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// RFC 3986 §2.1: "%" only as pct-encoded = "%" HEXDIG HEXDIG.
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;

class TlsRptSyntaxError extends Error {}

/** Parses one TLS-RPT record (its character-strings already joined). */
export function parseTlsRptRecord(text: string): TlsRptParse {
  try {
    return { ok: true, record: parseFields(text) };
  } catch (err) {
    if (err instanceof TlsRptSyntaxError) return { ok: false, error: err.message };
    throw err;
  }
}

function parseFields(text: string): TlsRptRecord {
  // RFC 8460 §3: tlsrpt-version = %s"v=TLSRPTv1" comes first, case-sensitive.
  if (!text.startsWith(VERSION_FIELD)) fail(`record must begin with ${VERSION_FIELD} (RFC 8460 §3 tlsrpt-version)`);
  let at = VERSION_FIELD.length;
  const rua: string[] = [];
  const extensions: Array<[string, string]> = [];
  let ruaFields = 0;

  for (;;) {
    const afterDelim = match(FIELD_DELIM, text, at);
    if (afterDelim === undefined) break;
    at = afterDelim;
    // RFC 8460 §3: [field-delim] — one delimiter may end the record.
    if (at === text.length) break;

    const name = scan(NAME_CHARS, text, at);
    at += name.length;
    // RFC 8460 §3: every field is name "=" value, with nothing in between.
    if (text[at] !== '=') fail(`offset ${at}: expected name=value field (RFC 8460 §3 tlsrpt-field)`);
    at += 1;

    if (name === 'rua') {
      // RFC 8460 §3: tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
      ruaFields += 1;
      for (;;) {
        const uri = scan(URI_CHARS, text, at);
        if (uri === '') fail(`offset ${at}: expected a URI in rua (RFC 8460 §3 tlsrpt-uri)`);
        checkUriSyntax(uri);
        rua.push(uri);
        at += uri.length;
        const next = match(URI_DELIM, text, at);
        if (next === undefined) break;
        at = next;
      }
    } else {
      if (!isExtName(name)) fail(`bad field name ${show(name)} (RFC 8460 §3 tlsrpt-ext-name)`);
      const value = scan(EXT_VALUE, text, at);
      if (value === '') {
        fail(`value of ${name} must be 1 or more of ASCII VCHAR except ";" and "=" (RFC 8460 §3 tlsrpt-ext-value)`);
      }
      at += value.length;
      extensions.push([name, value]);
    }
  }

  if (at !== text.length) {
    const ch = text[at]!;
    // A raw "!" in a URI is the one mistake worth naming: RFC 8460 §3 requires it percent-encoded.
    const hint = ch === '!' ? ' ("!" in a URI must be written %21, RFC 8460 §3)' : '';
    fail(`offset ${at}: unexpected ${show(ch)}${hint} (RFC 8460 §3)`);
  }
  // RFC 8460 §3: "the tlsrpt-rua field is required".
  if (ruaFields === 0) fail('missing rua field (RFC 8460 §3 tlsrpt-rua)');
  return { version: TLSRPT_VERSION, rua, extensions };
}

/** RFC 3986 §3 URI: a scheme, and well-formed percent-encoding. Scheme support is ruaProblem's job. */
function checkUriSyntax(uri: string): void {
  if (!URI_SCHEME.test(uri)) fail(`rua ${show(uri)}: not a URI with a scheme (RFC 8460 §3 tlsrpt-uri, RFC 3986 §3.1)`);
  if (BAD_PERCENT.test(uri)) fail(`rua ${show(uri)}: "%" not followed by two hex digits (RFC 3986 §2.1)`);
}

/**
 * Why a syntactically valid rua URI cannot receive reports, or undefined when it can. RFC 8460 §3: "Two
 * URI schemes are supported: mailto and https"; a mailto URI names one address (RFC 6068, commas being
 * percent-encoded here), an https URI a host to POST to (RFC 8460 §5.3).
 */
export function ruaProblem(uri: string): string | undefined {
  const colon = uri.indexOf(':');
  const scheme = uri.slice(0, colon).toLowerCase();
  if (scheme === 'mailto') {
    const path = uri.slice(colon + 1).split('?')[0]!;
    let address: string;
    try {
      address = decodeURIComponent(path);
    } catch {
      return 'the mailto address is not valid percent-encoded UTF-8';
    }
    const at = address.lastIndexOf('@');
    if (at <= 0) return `mailto:${address} has no local-part@domain address (RFC 6068 §2)`;
    if (/[\s<>"]/.test(address.slice(0, at))) return 'the mailto local part holds spaces or <>" characters';
    // The report is sent by mail to this domain, so it must be a host name (RFC 5321 §4.1.2 Domain).
    const problem = hostnameProblem(address.slice(at + 1).toLowerCase());
    if (problem !== undefined) return `mailto domain ${show(address.slice(at + 1))}: ${problem}`;
    return undefined;
  }
  if (scheme === 'https') {
    // RFC 3986 §3.2: "//" authority; WHATWG URL parsing would quietly read "https:///x" as host "x".
    if (!/^https:\/\/[^/?#]+/i.test(uri)) return 'the https URL has no host (RFC 3986 §3.2)';
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return 'not a valid https URL';
    }
    if (url.hostname === '') return 'the https URL has no host';
    return undefined;
  }
  return `unsupported scheme ${show(scheme)}: reports go only to mailto: or https: URIs (RFC 8460 §3)`;
}

/**
 * Picks the TLS-RPT record from a TXT RRset as node:dns resolveTxt returns it. RFC 8460 §3: strings of
 * one record are "concatenated together without adding spaces"; records not beginning with
 * "v=TLSRPTv1;" are discarded; "if the number of resulting records is not one", the domain does not
 * implement TLS-RPT.
 */
export function selectTlsRptRecord(records: string[][]): TlsRptSelection {
  const candidates = records.map((strings) => strings.join('')).filter(beginsWithVersion);
  if (candidates.length === 0) return { kind: 'none' };
  if (candidates.length > 1) {
    return { kind: 'invalid', error: `${candidates.length} ${VERSION_FIELD} records; senders ignore all of them (RFC 8460 §3)` };
  }
  const text = candidates[0]!;
  const parsed = parseTlsRptRecord(text);
  return parsed.ok ? { kind: 'record', record: parsed.record, text } : { kind: 'invalid', error: parsed.error, text };
}

/**
 * The version token followed by ";" or WSP (field-delim allows WSP before ";", as in RFC 8461 §3.1):
 * "v=TLSRPTv10" is another version, and a bare "v=TLSRPTv1" has no fields, so neither is a candidate.
 */
function beginsWithVersion(text: string): boolean {
  if (!text.startsWith(VERSION_FIELD)) return false;
  const next = text[VERSION_FIELD.length];
  return next === ';' || next === ' ' || next === '\t';
}

function fail(message: string): never {
  throw new TlsRptSyntaxError(message);
}
