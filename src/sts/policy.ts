/**
 * RFC 8461 §3.2: the policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt.
 *
 *   sts-policy-record    = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
 *   sts-policy-field     = version / mode / max_age / mx / extension, each name ":" *WSP value
 *   sts-policy-term      = LF / CRLF
 *   version value        = %s"STSv1"
 *   mode value           = %s"testing" / %s"enforce" / %s"none"
 *   max_age value        = 1*10(DIGIT)
 *   mx value             = ["*."] Domain
 *   sts-policy-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]
 *   sts-policy-vchar     = VCHAR / UTF8-2 / UTF8-3 / UTF8-4
 *
 * Three departures are forgiven, each reported as a Deviation (src/sts/types.ts; docs/decisions.md says
 * why): a UTF-8 BOM before the first field, empty lines (nothing or only SP/HTAB) anywhere, and one
 * trailing dot on an mx value. Every other rule is exact.
 *
 * The text arrives already decoded from UTF-8. Pure: no I/O.
 */
import { RFC8461 } from './rfc8461.js';
import { StsError } from '../errors.js';
import { parseMxValue } from './mx.js';
import { isExtName } from './txt.js';
import type { Deviation, Mode, MxPattern, ParsedPolicy, Policy } from './types.js';

export const MODES: readonly Mode[] = ['enforce', 'testing', 'none'];

/** U+FEFF, the UTF-8 byte order mark once decoded. */
const BOM = '\ufeff';

/**
 * At most this many deviations of each rule, and this many line problems, are listed: a 64 KiB body of
 * empty or broken lines must not become tens of thousands of log fields or `check` reasons. Every rule
 * that occurs is still listed at least once.
 */
export const POLICY_REPORT_LIMIT = 100;

/** A grammar violation on one line (or, without a line, a missing field). */
class PolicySyntaxError extends Error {}

function lineError(lineNo: number, rule: string): PolicySyntaxError {
  return new PolicySyntaxError(`line ${lineNo}: ${rule}`);
}

/** Everything one reading of a policy body found (what `check` shows a domain owner). */
export interface PolicyDiagnosis {
  /** The policy, when the body has no problem. */
  policy?: Policy;
  /** Forgiven departures, in line order, whether or not the body has problems too (POLICY_REPORT_LIMIT per rule). */
  deviations: Deviation[];
  /**
   * Every grammar violation ("line N: rule (RFC 8461 §3.2 ...)"), in line order (past POLICY_REPORT_LIMIT,
   * one "and N more broken lines"), then the missing fields.
   */
  problems: string[];
  /** Lines in the body (a final line terminator does not start another line). */
  lineCount: number;
}

/** Parses a policy body. Throws StsError('parse') naming the first line and the rule it breaks. */
export function parsePolicy(text: string): Policy {
  return readPolicy(text).policy;
}

/**
 * Parses a policy body into the policy its publisher meant and the deviations forgiven to read it.
 * Throws StsError('parse') naming the first line and the rule it breaks.
 */
export function readPolicy(text: string): ParsedPolicy {
  const { policy, deviations, problems } = diagnosePolicy(text);
  if (policy === undefined) throw new StsError('parse', problems[0] ?? 'no policy');
  return { policy, deviations };
}

/**
 * Reads a whole policy body, going on past a broken line so that every problem and every deviation is
 * found (one per line at most; bounded by the body's length).
 */
export function diagnosePolicy(text: string): PolicyDiagnosis {
  let version: string | undefined;
  let mode: Mode | undefined;
  let maxAge: number | undefined;
  const mx: MxPattern[] = [];
  const extensions: Array<[string, string]> = [];
  const seen = new Set<string>();
  const deviations: Deviation[] = [];
  const problems: string[] = [];
  const listed = new Map<Deviation['rule'], number>();
  let unlisted = 0;
  const deviate = (rule: Deviation['rule'], line: number) => {
    const n = listed.get(rule) ?? 0;
    listed.set(rule, n + 1);
    if (n < POLICY_REPORT_LIMIT) deviations.push({ rule, line });
  };
  /** Required fields that were present but broken: not reported missing as well. */
  const broken = new Set<string>();

  // Forgiven: a BOM before the first field (editors on Windows write one; it is no field of §3.2).
  const hasBom = text.startsWith(BOM);
  if (hasBom) deviate('bom', 1);
  const lines = splitLines(hasBom ? text.slice(BOM.length) : text);

  for (const [index, line] of lines.entries()) {
    const lineNo = index + 1;
    // Forgiven: an empty line, or one of only WSP, anywhere (RFC 8461 §3.2 has a field on every line).
    if (isEmptyLine(line)) {
      deviate('empty-line', lineNo);
      continue;
    }
    let key: string | undefined;
    try {
      const field = parseField(lineNo, line);
      key = field.key;
      const value = field.value;
      // RFC 8461 §3.2: a field given more than once keeps its first value (mx excepted, it is a list).
      // Every occurrence must still fit its rule, so a garbled file never yields a policy.
      const first = !seen.has(key);
      seen.add(key);
      switch (key) {
        case 'version':
          // RFC 8461 §3.2: sts-policy-version-value = %s"STSv1"
          if (value !== RFC8461.VERSION) {
            throw lineError(lineNo, `version must be ${RFC8461.VERSION} (RFC 8461 §3.2 sts-policy-version)`);
          }
          version = RFC8461.VERSION;
          break;
        case 'mode': {
          // RFC 8461 §3.2: sts-policy-mode-value = %s"testing" / %s"enforce" / %s"none"
          const m = MODES.find((candidate) => candidate === value);
          if (m === undefined) {
            throw lineError(lineNo, 'mode must be enforce, testing or none (RFC 8461 §3.2 sts-policy-mode)');
          }
          if (first) mode = m;
          break;
        }
        case 'max_age': {
          const seconds = parseMaxAge(value);
          if (seconds === undefined) {
            throw lineError(
              lineNo,
              `max_age must be 1-${RFC8461.MAX_AGE_MAX_DIGITS} digits, at most ${RFC8461.MAX_AGE_MAX_SECONDS} ` +
                '(RFC 8461 §3.2 sts-policy-max-age)',
            );
          }
          if (first) maxAge = seconds;
          break;
        }
        case 'mx':
          // RFC 8461 §3.2: mx may repeat; every pattern counts.
          try {
            const read = parseMxValue(value);
            mx.push(read.pattern);
            // Forgiven: one trailing dot (see parseMxValue).
            if (read.trailingDot) deviate('mx-trailing-dot', lineNo);
          } catch (err) {
            if (err instanceof StsError) throw lineError(lineNo, `${err.message} (RFC 8461 §3.2 sts-policy-mx)`);
            throw err;
          }
          break;
        default:
          // RFC 8461 §3.2: an unknown field must still fit sts-policy-extension; it is then ignored (kept for
          // display by `query`).
          if (!isExtValue(value)) {
            throw lineError(lineNo, `${key}: not VCHAR/UTF-8 with inner spaces (RFC 8461 §3.2 sts-policy-ext-value)`);
          }
          if (first) extensions.push([key, value]);
      }
    } catch (err) {
      if (!(err instanceof PolicySyntaxError)) throw err;
      if (problems.length < POLICY_REPORT_LIMIT) problems.push(err.message);
      else unlisted++;
      if (key !== undefined) broken.add(key);
    }
  }

  if (unlisted > 0) problems.push(`and ${unlisted} more broken lines`);
  // RFC 8461 §3.2: version, mode and max_age are required; mx too unless mode is none.
  const missing = (key: string) => !seen.has(key) && !broken.has(key);
  if (version === undefined && missing('version')) problems.push('missing version field (RFC 8461 §3.2)');
  if (mode === undefined && missing('mode')) problems.push('missing mode field (RFC 8461 §3.2)');
  if (maxAge === undefined && missing('max_age')) problems.push('missing max_age field (RFC 8461 §3.2)');
  if (mx.length === 0 && mode !== undefined && mode !== 'none' && !broken.has('mx')) {
    problems.push(`missing mx field, required with mode ${mode} (RFC 8461 §3.2)`);
  }
  const lineCount = lines.length;
  if (problems.length > 0 || version === undefined || mode === undefined || maxAge === undefined) {
    return { deviations, problems, lineCount };
  }
  return { policy: { version: RFC8461.VERSION, mode, maxAge, mx, extensions }, deviations, problems, lineCount };
}

/**
 * RFC 8461 §3.2 sts-policy-term = LF / CRLF between fields, and one optional term after the last.
 * Returns the lines without their terminators; a CR left inside a line is a bare CR and fails later.
 */
function splitLines(text: string): string[] {
  const pieces = text.split('\n');
  const terminated = pieces.length > 1 && pieces[pieces.length - 1] === '';
  // RFC 8461 §3.2: [sts-policy-term] — the final line terminator is optional.
  if (terminated) pieces.pop();
  return pieces.map((piece, i) => {
    const followedByLf = terminated || i < pieces.length - 1;
    // RFC 8461 §3.2: CRLF is a terminator only as a pair; a CR at the very end of the text is not.
    return followedByLf && piece.endsWith('\r') ? piece.slice(0, -1) : piece;
  });
}

/** Nothing, or only WSP (SP / HTAB, RFC 5234), between two line breaks. */
function isEmptyLine(line: string): boolean {
  return /^[ \t]*$/.test(line);
}

/** One line: `name ":" *WSP value *WSP`, split into key and value (the value not yet checked). */
function parseField(lineNo: number, line: string): { key: string; value: string } {
  // RFC 8461 §3.2 sts-policy-term: a CR is only allowed as the first half of CRLF.
  if (line.includes('\r')) throw lineError(lineNo, 'bare CR (RFC 8461 §3.2 sts-policy-term is LF or CRLF)');
  // RFC 8461 §3.2: a field starts the line; no leading WSP (RFC 5322 parsers would read it as folding).
  if (line[0] === ' ' || line[0] === '\t') {
    throw lineError(lineNo, 'leading whitespace (RFC 8461 §3.2 sts-policy-record)');
  }
  const colon = line.indexOf(':');
  if (colon < 0) throw lineError(lineNo, 'no ":" after the field name (RFC 8461 §3.2 sts-policy-field-delim)');
  const key = line.slice(0, colon);
  // RFC 8461 §3.2: the ":" comes directly after the name, and every name fits sts-policy-ext-name
  // (version, mode, max_age and mx all do). Names are case-sensitive: "Mode" is an extension, not mode.
  if (!isExtName(key)) {
    throw lineError(
      lineNo,
      `field name ${JSON.stringify(key.slice(0, 40))} is not a letter or digit then up to ` +
        `${RFC8461.EXT_NAME_MAX_LENGTH - 1} letters, digits, "_", "-", "." (RFC 8461 §3.2 sts-policy-ext-name)`,
    );
  }
  // RFC 8461 §3.2: sts-policy-field-delim = ":" *WSP, then the value, then *WSP to the end of the line.
  const value = line.slice(colon + 1).replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
  if (value === '') throw lineError(lineNo, `empty value for ${key} (RFC 8461 §3.2)`);
  return { key, value };
}

/**
 * RFC 8461 §3.2 sts-policy-max-age-value = 1*10(DIGIT), "up to 31557600". Read digit by digit: no sign,
 * no spaces, no exponent, no hex, ASCII digits only. Returns undefined when it does not fit.
 */
function parseMaxAge(value: string): number | undefined {
  if (value.length < 1 || value.length > RFC8461.MAX_AGE_MAX_DIGITS) return undefined;
  let seconds = 0;
  for (let i = 0; i < value.length; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    seconds = seconds * 10 + digit;
  }
  return seconds <= RFC8461.MAX_AGE_MAX_SECONDS ? seconds : undefined;
}

/**
 * RFC 8461 §3.2 sts-policy-ext-value: VCHAR or any UTF-8 character, with inner spaces (SP only, no HTAB).
 * Leading and trailing WSP were already stripped as field delimiter and line-end WSP.
 */
function isExtValue(value: string): boolean {
  for (const ch of value) {
    const cp = ch.codePointAt(0) as number;
    if (cp >= 0x21 && cp <= 0x7e) continue; // VCHAR
    if (cp === 0x20) continue; // inner SP
    // UTF8-2 / UTF8-3 / UTF8-4: any non-ASCII scalar value; a lone surrogate is not UTF-8.
    if (cp >= 0x80 && (cp < 0xd800 || cp > 0xdfff)) continue;
    return false;
  }
  return true;
}
