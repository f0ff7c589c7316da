/**
 * Which TLSA records an SMTP client can use (pure). RFC 6698 §2.1 defines the fields, RFC 7218 their
 * names, RFC 7672 §3.1 which usages SMTP uses, RFC 7671 §5 what a client does with the rest.
 *
 *   TLSA RDATA = usage (1 octet) selector (1 octet) matching-type (1 octet) association-data
 */

/** RFC 7218 §2.1 names of the certificate usages. */
export const TLSA_USAGE = { PKIX_TA: 0, PKIX_EE: 1, DANE_TA: 2, DANE_EE: 3 } as const;
/** RFC 7218 §2.2: Cert (the whole certificate), SPKI (its SubjectPublicKeyInfo). */
export const TLSA_SELECTOR = { CERT: 0, SPKI: 1 } as const;
/** RFC 7218 §2.3: Full (no hash), SHA2-256, SHA2-512; the digest lengths they imply. */
export const TLSA_MATCHING = { FULL: 0, SHA2_256: 1, SHA2_512: 2 } as const;
const DIGEST_BYTES: Record<number, number> = { [TLSA_MATCHING.SHA2_256]: 32, [TLSA_MATCHING.SHA2_512]: 64 };

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

/** Why a record cannot be used, or null when it can. */
export type TlsaUnusable =
  /** RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP; clients treat them as unusable. */
  | 'pkix-usage'
  /** RFC 6698 §2.1.1: usages above 3 are unassigned. */
  | 'unknown-usage'
  /** RFC 6698 §2.1.2: selectors above 1 are unassigned. */
  | 'unknown-selector'
  /** RFC 6698 §2.1.3: matching types above 2 are unassigned. */
  | 'unknown-matching-type'
  /** RFC 7671 §10.1.2 (and Postfix/OpenSSL): a digest of the wrong length, or empty data, matches nothing. */
  | 'bad-data-length';

/** RFC 7672 §3.1 and RFC 7671 §5: usable for SMTP = DANE-TA(2) or DANE-EE(3), known selector and matching type. */
export function tlsaUnusable(r: TlsaRecord): TlsaUnusable | null {
  if (r.usage === TLSA_USAGE.PKIX_TA || r.usage === TLSA_USAGE.PKIX_EE) return 'pkix-usage';
  if (r.usage !== TLSA_USAGE.DANE_TA && r.usage !== TLSA_USAGE.DANE_EE) return 'unknown-usage';
  if (r.selector !== TLSA_SELECTOR.CERT && r.selector !== TLSA_SELECTOR.SPKI) return 'unknown-selector';
  if (r.matchingType !== TLSA_MATCHING.FULL && r.matchingType !== TLSA_MATCHING.SHA2_256 && r.matchingType !== TLSA_MATCHING.SHA2_512) {
    return 'unknown-matching-type';
  }
  const want = DIGEST_BYTES[r.matchingType];
  if (want !== undefined ? r.data.length !== want : r.data.length === 0) return 'bad-data-length';
  return null;
}

/** `3 1 1 <hex>`: a record in its presentation form (RFC 6698 §2.2), for logs and `query`/`check`. */
export function tlsaText(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}
