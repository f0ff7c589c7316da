/**
 * Does a TLSA record match the certificate chain an MX host presented (RFC 6698 §2.1, RFC 7671 §5)?
 * For `check` only: senders do this themselves; we tell a domain owner before they do.
 *
 *   DANE-EE(3): the leaf certificate (selector 0) or its public key (selector 1), whatever its names and
 *               dates (RFC 7672 §3.1.1).
 *   DANE-TA(2): a certificate of the presented chain above the leaf (RFC 7672 §3.1.2: the server must
 *               send the trust anchor).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { TLSA_MATCHING, TLSA_SELECTOR, TLSA_USAGE, tlsaUnusable, type TlsaRecord } from '../resolver/tlsa.js';

/** Whether `record` matches one certificate of `chainDer` (leaf first) as its usage says. */
export function tlsaMatchesChain(record: TlsaRecord, chainDer: Buffer[]): boolean {
  if (tlsaUnusable(record) !== null || chainDer.length === 0) return false;
  const candidates = record.usage === TLSA_USAGE.DANE_EE ? chainDer.slice(0, 1) : chainDer.length > 1 ? chainDer.slice(1) : chainDer;
  return candidates.some((der) => {
    const selected = selectedBytes(record.selector, der);
    return selected !== null && associationData(record.matchingType, selected).equals(record.data);
  });
}

/** RFC 6698 §2.1.2: the whole certificate, or its SubjectPublicKeyInfo; null when it does not parse. */
function selectedBytes(selector: number, der: Buffer): Buffer | null {
  if (selector === TLSA_SELECTOR.CERT) return der;
  try {
    return new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
  } catch {
    return null;
  }
}

/** RFC 6698 §2.1.3: as is, SHA2-256 or SHA2-512 (the caller checked the type is one of these). */
export function associationData(matchingType: number, selected: Buffer): Buffer {
  if (matchingType === TLSA_MATCHING.SHA2_256) return createHash('sha256').update(selected).digest();
  if (matchingType === TLSA_MATCHING.SHA2_512) return createHash('sha512').update(selected).digest();
  return selected;
}
