/**
 * RFC 8461 §3.1: the `_mta-sts.<domain>` TXT record that announces a policy and its id.
 *
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 *   sts-field       = sts-id / sts-extension
 *   sts-field-delim = *WSP ";" *WSP
 *   sts-version     = %s"v=STSv1"
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension   = sts-ext-name "=" sts-ext-value
 *   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)   ; VCHAR except ";" and "="
 *
 * Pure: no I/O. Every failure is an StsError with reason 'txt', which callers treat as "no policy".
 */
import { RFC8461 } from './rfc8461.js';
import { StsError } from '../errors.js';
import type { StsRecord } from './types.js';
import { match, scan, show } from './cursor.js';

const VERSION_FIELD = `v=${RFC8461.VERSION}`;

// RFC 8461 §3.1 (and §3.2 sts-policy-ext-name, the same rule): a letter or digit, then up to 31 more of
// letters, digits, "_", "-", ".".
const EXT_NAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${RFC8461.EXT_NAME_MAX_LENGTH - 1}}$`);

// RFC 8461 §3.1 sts-id: 1*32(ALPHA / DIGIT).
const ID_VALUE = new RegExp(`^[A-Za-z0-9]{1,${RFC8461.ID_MAX_LENGTH}}$`);

// Sticky scanners: the longest run of characters a field name or an sts-ext-value may hold.
const NAME_CHARS = /[A-Za-z0-9_.-]*/y;
const VALUE_CHARS = /[\x21-\x3a\x3c\x3e-\x7e]*/y;
// RFC 8461 §3.1 sts-field-delim = *WSP ";" *WSP (WSP is SP / HTAB, RFC 5234 B.1).
const FIELD_DELIM = /[ \t]*;[ \t]*/y;

/** RFC 8461 §3.1 sts-ext-name; also §3.2 sts-policy-ext-name, which is the same rule. */
export function isExtName(name: string): boolean {
  return EXT_NAME.test(name);
}

/** Parses one TXT record (its strings already joined). Throws StsError('txt') on any grammar violation. */
export function parseStsRecord(text: string): StsRecord {
  // RFC 8461 §3.1: the record starts with sts-version, case-sensitive (%s).
  if (!text.startsWith(VERSION_FIELD)) {
    throw new StsError('txt', `record must begin with ${VERSION_FIELD} (RFC 8461 §3.1)`);
  }
  let at = VERSION_FIELD.length;
  let id: string | undefined;
  const extensions: Array<[string, string]> = [];

  for (;;) {
    const afterDelim = match(FIELD_DELIM, text, at);
    if (afterDelim === undefined) break;
    at = afterDelim;
    // RFC 8461 §3.1: [sts-field-delim] — one delimiter may end the record.
    if (at === text.length) break;

    const name = scan(NAME_CHARS, text, at);
    at += name.length;
    if (text[at] !== '=') {
      throw new StsError('txt', `offset ${at}: expected name=value field (RFC 8461 §3.1 sts-field)`);
    }
    at += 1;
    const value = scan(VALUE_CHARS, text, at);
    at += value.length;

    if (name === 'id') {
      if (!ID_VALUE.test(value)) {
        throw new StsError('txt', `id must be 1-${RFC8461.ID_MAX_LENGTH} letters/digits (RFC 8461 §3.1 sts-id)`);
      }
      // RFC 8461 §3.1 says nothing about a repeated field; §3.2 has the policy file keep the first
      // occurrence of a repeated field, and we apply the same rule here: the first id wins, later ones must
      // still be well-formed (so that a garbled record never yields a policy).
      id ??= value;
    } else if (name === 'v') {
      // A repeated version field follows the same first-wins rule, and must repeat sts-version exactly.
      if (value !== RFC8461.VERSION) {
        throw new StsError('txt', `repeated v= field must be ${VERSION_FIELD} (RFC 8461 §3.1 sts-version)`);
      }
    } else {
      if (!isExtName(name)) {
        throw new StsError('txt', `bad field name ${show(name)} (RFC 8461 §3.1 sts-ext-name)`);
      }
      if (value === '') {
        throw new StsError('txt', `empty value for ${name} (RFC 8461 §3.1 sts-ext-value)`);
      }
      // RFC 8461 §3.1: unknown fields are kept for display and otherwise ignored.
      extensions.push([name, value]);
    }
  }

  if (at !== text.length) {
    throw new StsError('txt', `offset ${at}: unexpected ${show(text.slice(at, at + 1))} (RFC 8461 §3.1)`);
  }
  // RFC 8461 §3.1: id is required.
  if (id === undefined) throw new StsError('txt', 'missing id field (RFC 8461 §3.1 sts-id)');
  return { version: RFC8461.VERSION, id, extensions };
}

/** RFC 8461 §3.1: more than one STSv1 record is no policy; `check` tells the owner which fix applies. */
export class SeveralRecordsError extends StsError {
  constructor(readonly count: number) {
    super('txt', `${count} ${VERSION_FIELD} records`);
  }
}

/** What the TXT lookup at `_mta-sts.<domain>` says. */
export type TxtSelection = { kind: 'record'; record: StsRecord } | { kind: 'none' };

/**
 * Picks the MTA-STS record from a TXT RRset as node:dns resolveTxt returns it (each record an array of
 * character-strings). Throws StsError('txt') when the chosen record is invalid or there are several.
 */
export function selectStsRecord(records: string[][]): TxtSelection {
  // A TXT record's character-strings form one value, joined without a separator (RFC 8461 is silent;
  // RFC 7208 §3.3 spells the rule out for SPF, and every MTA-STS implementation follows it).
  const joined = records.map((strings) => strings.join(''));
  // RFC 8461 §3.1: records that do not begin with "v=STSv1;" are discarded.
  const candidates = joined.filter(beginsWithVersion);
  if (candidates.length === 0) return { kind: 'none' };
  // RFC 8461 §3.1: if the number of resulting records is not one, there is no available policy.
  if (candidates.length > 1) throw new SeveralRecordsError(candidates.length);
  return { kind: 'record', record: parseStsRecord(candidates[0] as string) };
}

/**
 * RFC 8461 §3.1 discards records not beginning with "v=STSv1;", but its own sts-field-delim allows WSP
 * before the ";" (RFC errata 6285 notes the conflict). We keep the version token followed by ";" or WSP:
 * "v=STSv10" (another version) and a bare "v=STSv1" (no fields at all) are discarded.
 */
function beginsWithVersion(text: string): boolean {
  if (!text.startsWith(VERSION_FIELD)) return false;
  const next = text[VERSION_FIELD.length];
  return next === ';' || next === ' ' || next === '\t';
}
