/** Which TLSA records an SMTP client can use (RFC 7672 §3.1, RFC 6698 §2.1, RFC 7671): one line per case. */
import { describe, expect, it } from 'vitest';
import { tlsaText, tlsaUnusable, type TlsaUnusable } from '../../src/resolver/tlsa.js';

const bytes = (n: number) => Buffer.alloc(n, 0xab);

describe('tlsaUnusable', () => {
  const table: Array<[usage: number, selector: number, matching: number, dataBytes: number, want: TlsaUnusable | null, rule: string]> = [
    [3, 1, 1, 32, null, 'DANE-EE SPKI SHA2-256: the common record (RFC 7672 §3.1.1)'],
    [3, 0, 1, 32, null, 'DANE-EE Cert SHA2-256'],
    [3, 1, 2, 64, null, 'DANE-EE SPKI SHA2-512'],
    [3, 1, 0, 91, null, 'DANE-EE SPKI Full: the key itself'],
    [2, 0, 1, 32, null, 'DANE-TA Cert SHA2-256 (RFC 7672 §3.1.2)'],
    [2, 1, 2, 64, null, 'DANE-TA SPKI SHA2-512'],
    [0, 0, 1, 32, 'pkix-usage', 'PKIX-TA: not for SMTP (RFC 7672 §3.1.3)'],
    [1, 1, 1, 32, 'pkix-usage', 'PKIX-EE: not for SMTP (RFC 7672 §3.1.3)'],
    [4, 1, 1, 32, 'unknown-usage', 'usage 4 is unassigned (RFC 6698 §2.1.1)'],
    [255, 1, 1, 32, 'unknown-usage', 'usage 255: private use, unknown to us'],
    [3, 2, 1, 32, 'unknown-selector', 'selector 2 is unassigned (RFC 6698 §2.1.2)'],
    [3, 1, 3, 32, 'unknown-matching-type', 'matching type 3 is unassigned (RFC 6698 §2.1.3)'],
    [3, 1, 1, 31, 'bad-data-length', 'SHA2-256 digest one byte short'],
    [3, 1, 1, 64, 'bad-data-length', 'SHA2-512-sized data under SHA2-256'],
    [3, 1, 2, 32, 'bad-data-length', 'SHA2-256-sized data under SHA2-512'],
    [3, 1, 0, 0, 'bad-data-length', 'Full with no data'],
  ];
  it.each(table)('%i %i %i (%i bytes) -> %s: %s', (usage, selector, matchingType, n, want) => {
    expect(tlsaUnusable({ usage, selector, matchingType, data: bytes(n) })).toBe(want);
  });
});

it('tlsaText: the presentation form of RFC 6698 §2.2', () => {
  expect(tlsaText({ usage: 3, selector: 1, matchingType: 1, data: Buffer.from([0x01, 0xab]) })).toBe('3 1 1 01ab');
});
