/**
 * The lookup key of Postfix's `smtp_dns_reply_filter` (Postfix >= 3.0): every DNS record the SMTP client
 * receives, as text, made by dns_strrecord() in src/dns/dns_strrecord.c of the Postfix source:
 *
 *   record   = owner "." SP ttl SP "IN" SP type SP data
 *   MX data  = preference SP exchange "."          e.g. `example.com. 300 IN MX 10 mx1.example.com.`
 *
 * Postfix folds the key to lower case before a fixed-string lookup (DICT_FLAG_FOLD_FIX); we compare
 * case-insensitively all the same. Pure: no I/O.
 */

/** An MX record, as the filter key names it. */
export interface MxRecordKey {
  kind: 'mx';
  /** The owner name (the domain whose MX this is), without the trailing dot. */
  owner: string;
  preference: number;
  /** The MX host, without the trailing dot, lower case. */
  exchange: string;
}

/** Any other record type (A, AAAA, TLSA, CNAME, ...): the filter has no opinion on it. */
export interface OtherRecordKey {
  kind: 'other';
  type: string;
}

export type DnsReplyKey = MxRecordKey | OtherRecordKey;

// dns_strrecord: "%s. %u IN %s " then the type's data; MX data is "%u %s.".
const RECORD = /^(\S+)\. (\d{1,10}) IN ([A-Za-z0-9]+) (.*)$/s;
const MX_DATA = /^(\d{1,5}) (\S+)\.$/;
/** RFC 1035 §3.3.9: PREFERENCE is a 16-bit integer. */
const MAX_PREFERENCE = 0xffff;

/** The record a filter key describes, or undefined when the key is not in dns_strrecord's form. */
export function parseDnsReplyKey(key: string): DnsReplyKey | undefined {
  const record = RECORD.exec(key);
  if (!record) return undefined;
  const [, owner, , type] = record;
  if (type!.toUpperCase() !== 'MX') return { kind: 'other', type: type!.toUpperCase() };
  const mx = MX_DATA.exec(record[4]!);
  if (!mx) return undefined;
  const preference = Number(mx[1]);
  if (preference > MAX_PREFERENCE) return undefined;
  return { kind: 'mx', owner: owner!.toLowerCase(), preference, exchange: mx[2]!.toLowerCase() };
}
