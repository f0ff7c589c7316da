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
 * The text arrives already decoded from UTF-8. Pure: no I/O.
 */
import { RFC8461 } from '../config/defaults.js';
import { StsError } from '../errors.js';
import { parseMxPattern } from './mx.js';
import { isExtName } from './txt.js';
import type { Mode, MxPattern, Policy } from './types.js';

const MODES: readonly Mode[] = ['enforce', 'testing', 'none'];

/** A grammar violation inside the parser; parsePolicy turns it into the one StsError callers see. */
class PolicySyntaxError extends Error {}

function lineError(lineNo: number, rule: string): PolicySyntaxError {
  return new PolicySyntaxError(`line ${lineNo}: ${rule}`);
}

/** Parses a policy body. Throws StsError('parse') naming the line and the rule it breaks. */
export function parsePolicy(text: string): Policy {
  try {
    return parseFields(text);
  } catch (err) {
    if (err instanceof PolicySyntaxError) throw new StsError('parse', err.message);
    throw err;
  }
}

function parseFields(text: string): Policy {
  let version: string | undefined;
  let mode: Mode | undefined;
  let maxAge: number | undefined;
  const mx: MxPattern[] = [];
  const extensions: Array<[string, string]> = [];
  const seen = new Set<string>();

  for (const [index, line] of splitLines(text).entries()) {
    const lineNo = index + 1;
    const { key, value } = parseField(lineNo, line);
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
          mx.push(parseMxPattern(value));
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
  }

  // RFC 8461 §3.2: version, mode and max_age are required; mx too unless mode is none.
  if (version === undefined) throw new PolicySyntaxError('missing version field (RFC 8461 §3.2)');
  if (mode === undefined) throw new PolicySyntaxError('missing mode field (RFC 8461 §3.2)');
  if (maxAge === undefined) throw new PolicySyntaxError('missing max_age field (RFC 8461 §3.2)');
  if (mx.length === 0 && mode !== 'none') {
    throw new PolicySyntaxError(`missing mx field, required with mode ${mode} (RFC 8461 §3.2)`);
  }
  return { version: RFC8461.VERSION, mode, maxAge, mx, extensions };
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

/** One line: `name ":" *WSP value *WSP`, split into key and value (the value not yet checked). */
function parseField(lineNo: number, line: string): { key: string; value: string } {
  // RFC 8461 §3.2: every line is a field; an empty line fits no rule.
  if (line === '') throw lineError(lineNo, 'empty line (RFC 8461 §3.2 sts-policy-record)');
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
