/**
 * Reference matchers written from the RFC ABNF, independently of src/: no import from src/sts or
 * src/server, and a different technique (whole-input regular expressions built from the ABNF rules, then
 * the prose rules on the extracted fields) from the cursor parsers under test. The fuzz tests assert
 * "src accepts <=> reference accepts".
 *
 * Where the ABNF is ambiguous (RFC 8461's own grammars let a malformed `id=`, `mode:` or `max_age:`
 * field also match the extension rule), the prose of the RFC and docs/decisions.md decide, and each
 * such rule is written out below as its own line, with the sentence it comes from.
 */

/* ----------------------------------------------------------------- RFC 5234 core rules */

const ALPHA_DIGIT = 'A-Za-z0-9';
/** WSP = SP / HTAB */
const WSP = '[ \\t]';

/* ----------------------------------------------------------------- RFC 8461 §3.1 TXT record */

// sts-field-delim = *WSP ";" *WSP
const STS_FIELD_DELIM = `${WSP}*;${WSP}*`;
// sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
const STS_EXT_NAME = `[${ALPHA_DIGIT}][${ALPHA_DIGIT}_.-]{0,31}`;
// sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
const STS_EXT_VALUE = '[\\x21-\\x3a\\x3c\\x3e-\\x7e]+';
// sts-id = %s"id=" 1*32(ALPHA / DIGIT); sts-extension = sts-ext-name "=" sts-ext-value.
// Every sts-id also matches sts-extension, so one pattern covers sts-field syntactically.
const STS_FIELD = `${STS_EXT_NAME}=${STS_EXT_VALUE}`;
// sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
const STS_TEXT_RECORD = new RegExp(`^v=STSv1(?:${STS_FIELD_DELIM}${STS_FIELD})+(?:${STS_FIELD_DELIM})?$`);
const STS_FIELD_GLOBAL = new RegExp(`(${STS_EXT_NAME})=(${STS_EXT_VALUE})`, 'g');
// sts-id value: 1*32(ALPHA / DIGIT)
const STS_ID_VALUE = new RegExp(`^[${ALPHA_DIGIT}]{1,32}$`);

export interface ReferenceTxt {
  id: string;
  extensions: Array<[string, string]>;
}

/** RFC 8461 §3.1, or null when the record is not a valid sts-text-record. */
export function referenceTxt(text: string): ReferenceTxt | null {
  if (!STS_TEXT_RECORD.test(text)) return null;
  const fields = [...text.slice('v=STSv1'.length).matchAll(STS_FIELD_GLOBAL)].map((m) => [m[1]!, m[2]!] as [string, string]);
  let id: string | undefined;
  const extensions: Array<[string, string]> = [];
  for (const [name, value] of fields) {
    if (name === 'id') {
      // §3.1 prose: id is "1-32 characters ... [a-zA-Z0-9]"; an `id=` that does not fit sts-id is a bad id,
      // not an extension. decisions: a repeated id keeps the first.
      if (!STS_ID_VALUE.test(value)) return null;
      id ??= value;
    } else if (name === 'v') {
      // A repeated version field must repeat sts-version (a record never carries two versions).
      if (value !== 'STSv1') return null;
    } else {
      extensions.push([name, value]);
    }
  }
  // §3.1 prose: "id: (plain-text, required)".
  if (id === undefined) return null;
  return { id, extensions };
}

/* ----------------------------------------------------------------- RFC 5321 Domain, RFC 1035 limits */

// RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
const SUB_DOMAIN = `[${ALPHA_DIGIT}](?:[${ALPHA_DIGIT}-]*[${ALPHA_DIGIT}])?`;
// RFC 5321 §4.1.2: Domain = sub-domain *("." sub-domain)
const DOMAIN = new RegExp(`^${SUB_DOMAIN}(?:\\.${SUB_DOMAIN})*$`);

/**
 * RFC 5321 Domain, with RFC 1035 §2.3.4 sizes (labels of at most 63 octets, 253 in all without the root
 * dot) and, as in docs/decisions.md, at least two labels (a bare TLD is never an MTA-STS domain or MX).
 */
export function referenceHostname(name: string): boolean {
  if (!DOMAIN.test(name) || name.length > 253) return false;
  const labels = name.split('.');
  return labels.length >= 2 && labels.every((l) => l.length <= 63);
}

/* ----------------------------------------------------------------- RFC 8461 §3.2 policy file */

// sts-policy-vchar = VCHAR / UTF8-2 / UTF8-3 / UTF8-4 (text already decoded: any non-ASCII scalar value)
const POLICY_VCHAR = '[\\x21-\\x7e\\u{80}-\\u{d7ff}\\u{e000}-\\u{10ffff}]';
// sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]
const POLICY_EXT_VALUE = `${POLICY_VCHAR}(?:(?:\\x20|${POLICY_VCHAR})*${POLICY_VCHAR})?`;
// sts-policy-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
const POLICY_EXT_NAME = `[${ALPHA_DIGIT}][${ALPHA_DIGIT}_.-]{0,31}`;
// sts-policy-field-delim = ":" *WSP. Every field (version, mode, max_age, mx, extension) has the shape
// name ":" *WSP value, and each specific value also fits sts-policy-ext-value, so a line is:
// sts-policy-field *WSP
const POLICY_LINE = `(${POLICY_EXT_NAME}):${WSP}*(${POLICY_EXT_VALUE})${WSP}*`;
// sts-policy-term = LF / CRLF
const POLICY_TERM = '(?:\\r\\n|\\n)';
// docs/decisions.md forgives empty lines: nothing, or only WSP, between line breaks, anywhere. So a line is
// a field or empty, and the record is lines joined by terms, with one optional final term:
// sts-policy-record = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
const EMPTY_LINE = `${WSP}*`;
const ANY_LINE = `(?:${POLICY_LINE}|${EMPTY_LINE})`;
const POLICY_RECORD = new RegExp(`^${ANY_LINE}(?:${POLICY_TERM}${ANY_LINE})*${POLICY_TERM}?$`, 'u');
const POLICY_LINE_ONLY = new RegExp(`^${POLICY_LINE}$`, 'u');
const EMPTY_LINE_ONLY = new RegExp(`^${EMPTY_LINE}$`);

// sts-policy-version-value = %s"STSv1"
const VERSION_VALUE = /^STSv1$/;
// sts-policy-mode-value = %s"testing" / %s"enforce" / %s"none"
const MODE_VALUE = /^(?:testing|enforce|none)$/;
// sts-policy-max-age-value = 1*10(DIGIT)
const MAX_AGE_VALUE = /^[0-9]{1,10}$/;
// sts-policy-mx-value = ["*."] Domain, and docs/decisions.md forgives one final "." after the Domain.
const MX_VALUE = /^(\*\.)?(.+?)(\.?)$/;

export type ReferenceDeviation = { rule: 'bom' | 'empty-line' | 'mx-trailing-dot'; line: number };

export interface ReferencePolicy {
  mode: 'testing' | 'enforce' | 'none';
  maxAge: number;
  /** mx values, lower-cased, without a forgiven trailing dot, in order. */
  mx: string[];
  /** What docs/decisions.md forgives, in line order. */
  deviations: ReferenceDeviation[];
}

/** RFC 8461 §3.2 with the deviations docs/decisions.md forgives, or null when the text is not a policy. */
export function referencePolicy(input: string): ReferencePolicy | null {
  const deviations: ReferenceDeviation[] = [];
  // decisions: one UTF-8 BOM (U+FEFF once decoded) before everything is dropped.
  let text = input;
  if (text.charCodeAt(0) === 0xfeff) {
    deviations.push({ rule: 'bom', line: 1 });
    text = text.slice(1);
  }
  if (!POLICY_RECORD.test(text)) return null;
  const body = text.endsWith('\n') ? text.slice(0, text.endsWith('\r\n') ? -2 : -1) : text;
  const lines = body.split(/\r\n|\n/);
  let version = false;
  let mode: ReferencePolicy['mode'] | undefined;
  let maxAge: number | undefined;
  const mx: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (EMPTY_LINE_ONLY.test(line)) {
      deviations.push({ rule: 'empty-line', line: i + 1 });
      continue;
    }
    const m = POLICY_LINE_ONLY.exec(line);
    if (m === null) return null;
    const name = m[1]!;
    // The ext-value pattern may have left trailing WSP-free content only; strip what *WSP took.
    const value = m[2]!;
    switch (name) {
      case 'version':
        if (!VERSION_VALUE.test(value)) return null;
        version = true;
        break;
      case 'mode':
        if (!MODE_VALUE.test(value)) return null;
        // decisions (§3.2 for repeated fields): the first occurrence counts, every one must fit.
        mode ??= value as ReferencePolicy['mode'];
        break;
      case 'max_age': {
        if (!MAX_AGE_VALUE.test(value)) return null;
        const seconds = Number(value);
        // §3.2 prose: max_age is "up to 31557600".
        if (seconds > 31_557_600) return null;
        maxAge ??= seconds;
        break;
      }
      case 'mx': {
        const [, star = '', domain = '', dot = ''] = MX_VALUE.exec(value) ?? [];
        if (!referenceHostname(domain)) return null;
        if (dot !== '') deviations.push({ rule: 'mx-trailing-dot', line: i + 1 });
        mx.push((star + domain).toLowerCase());
        break;
      }
      default:
      // sts-policy-extension: already matched by POLICY_LINE.
    }
  }
  // §3.2 prose: version, mode and max_age are required; mx is required unless mode is none.
  if (!version || mode === undefined || maxAge === undefined) return null;
  if (mode !== 'none' && mx.length === 0) return null;
  return { mode, maxAge, mx, deviations };
}

/* ----------------------------------------------------------------- netstrings */

export type ReferenceNetstring = { payloads: Buffer[]; error: boolean };

/**
 * https://cr.yp.to/proto/netstrings.txt, over a whole byte stream: `[len] ":" [string] ","`, [len]
 * decimal without leading zeros ("0" only for the empty string). With a cap: a length whose digits read
 * so far already exceed `max` is an error (our decoder's documented contract: refuse before buffering).
 * A stream that ends inside a frame is not an error; that frame is just not complete.
 */
export function referenceNetstrings(stream: Buffer, max: number): ReferenceNetstring {
  const payloads: Buffer[] = [];
  let i = 0;
  while (i < stream.length) {
    const digitsStart = i;
    let len = 0;
    while (i < stream.length && stream[i]! >= 0x30 && stream[i]! <= 0x39) {
      // "[len] begins with <30> exactly when [string] is empty": a digit after a leading 0 is an error.
      if (i > digitsStart && stream[digitsStart] === 0x30) return { payloads, error: true };
      len = len * 10 + (stream[i]! - 0x30);
      i++;
      if (len > max) return { payloads, error: true };
    }
    if (i === stream.length) return { payloads, error: false };
    if (stream[i] !== 0x3a || i === digitsStart) return { payloads, error: true };
    i++;
    if (stream.length - i < len) return { payloads, error: false };
    const payload = stream.subarray(i, i + len);
    i += len;
    if (i === stream.length) return { payloads, error: false };
    if (stream[i] !== 0x2c) return { payloads, error: true };
    i++;
    payloads.push(payload);
  }
  return { payloads, error: false };
}
