/**
 * The certificate identity rule (src/net/identity.ts), one line per case: RFC 9525 §6.3 DNS-ID
 * matching, no CN-ID (RFC 9525 §2), and the reading of node:tls's subjectAltName text.
 */
import { describe, expect, it } from 'vitest';
import {
  CertificateIdentityError,
  certificateDnsIds,
  certificateMatches,
  checkCertificateIdentity,
  dnsIdMatches,
  identityProblem,
} from '../../src/net/identity.js';
import type { PeerCertificate } from 'node:tls';

describe('dnsIdMatches: RFC 9525 §6.3', () => {
  it.each<[host: string, dnsId: string, want: boolean, rule: string]>([
    ['mta-sts.example.com', 'mta-sts.example.com', true, 'exact DNS-ID'],
    ['mta-sts.example.com', 'MTA-STS.Example.COM', true, 'case-insensitive (ASCII)'],
    ['MX.example.com', 'mx.example.com', true, 'case-insensitive, either side'],
    ['mx.example.com.', 'mx.example.com', true, 'reference in absolute form: one trailing dot ignored'],
    ['mx.example.com', 'mx.example.com.', false, 'presented DNS-ID in absolute form is malformed (RFC 5280 §4.2.1.6)'],
    ['mx.example.com', 'example.com', false, 'parent name is another name'],
    ['example.com', 'mx.example.com', false, 'child name is another name'],
    ['mx.example.com', 'mx.example.com.evil', false, 'suffix of the presented name'],
    ['mx.example.com', 'x.example.com', false, 'label suffix is not a match'],
    ['mx.example.com', '*.example.com', true, 'wildcard as the whole left-most label matches one label'],
    ['MX.EXAMPLE.COM', '*.Example.Com', true, 'wildcard, case-insensitive'],
    ['a.mx.example.com', '*.example.com', false, 'wildcard matches exactly one label, not two'],
    ['example.com', '*.example.com', false, 'wildcard matches exactly one label, not none'],
    ['mx.example.com', 'm*.example.com', false, 'partial wildcard (prefix) matches nothing'],
    ['mx.example.com', '*x.example.com', false, 'partial wildcard (suffix) matches nothing'],
    ['mx.example.com', 'mx.*.com', false, 'wildcard not in the left-most label'],
    ['mx.example.com', 'mx.example.*', false, 'wildcard in the right-most label'],
    ['a.b.example.com', '*.*.example.com', false, 'two wildcards'],
    ['example.com', '*.com', false, 'wildcard over a single-label base'],
    ['mx.example.com', '*', false, 'a bare wildcard'],
    ['mx.example.com', '*.', false, 'a wildcard over nothing'],
    ['xn--mnich-kva.example.com', '*.example.com', true, 'an A-label is one label like any other'],
    ['xn--mnich-kva.example.com', 'XN--MNICH-KVA.example.com', true, 'A-labels compare case-insensitively'],
    ['münich.example.com', 'münich.example.com', false, 'U-labels are never DNS-IDs (A-labels only)'],
    ['mx.kexample.com', 'mx.\u212aexample.com', false, 'KELVIN SIGN does not fold onto "k"'],
    ['mx.example.com', 'mx..example.com', false, 'empty label'],
    ['mx.example.com', '.mx.example.com', false, 'leading dot'],
    ['mx.example.com', '', false, 'empty DNS-ID'],
    ['mx.example.com', 'mx.example.com\u0000.evil', false, 'embedded NUL'],
    ['*.example.com', '*.example.com', false, 'a reference with "*" is not a host name'],
    ['', '*.example.com', false, 'empty reference'],
  ])('%s vs %j -> %s (%s)', (host, dnsId, want) => {
    expect(dnsIdMatches(host, dnsId)).toBe(want);
  });
});

describe('identityProblem: only DNS-IDs count (RFC 9525 §2: no CN-ID)', () => {
  it.each<[host: string, dnsIds: string[], want: string | undefined, rule: string]>([
    ['mx.example.com', ['mx.example.com'], undefined, 'one matching DNS-ID'],
    ['mx.example.com', ['other.example.com', '*.example.com'], undefined, 'any DNS-ID may match'],
    ['mx.example.com', [], 'no-dns-id', 'no DNS-ID at all (a CN is never looked at)'],
    ['mx.example.com', ['other.example.com'], 'mismatch', 'DNS-IDs, none for the host'],
  ])('%s in %j -> %s (%s)', (host, dnsIds, want) => {
    expect(identityProblem(host, dnsIds)).toBe(want);
  });
});

describe('certificateDnsIds: node:tls subjectAltName text', () => {
  it.each<[text: string | undefined, want: string[], rule: string]>([
    [undefined, [], 'no subjectAltName extension'],
    ['', [], 'empty extension'],
    ['DNS:a.example', ['a.example'], 'one DNS name'],
    ['DNS:a.example, DNS:b.example', ['a.example', 'b.example'], 'entries separated by ", "'],
    ['IP Address:192.0.2.1, DNS:a.example, URI:https://x.example/', ['a.example'], 'only DNS entries'],
    ['email:a@b.example, IP Address:192.0.2.1', [], 'no DNS entry'],
    ['DNS:"evil.example, DNS:good.example"', ['evil.example, DNS:good.example'], 'a JSON-quoted value stays one entry: no forged second name'],
    ['DNS:"a\\u002cb", DNS:c.example', ['a,b', 'c.example'], 'escapes inside a quoted value'],
    ['DNS:"unterminated, DNS:good.example', ['"unterminated, DNS:good.example'], 'broken quoting reads as one unmatched entry'],
  ])('%j -> %j (%s)', (text, want) => {
    expect(certificateDnsIds(text === undefined ? ({} as PeerCertificate) : ({ subjectaltname: text } as PeerCertificate))).toEqual(want);
  });

  it('a forged entry inside quotes never matches the host it names', () => {
    const cert = { subjectaltname: 'DNS:"evil.example, DNS:good.example"' } as PeerCertificate;
    expect(certificateMatches('good.example', cert)).toBe(false);
  });
});

describe('checkCertificateIdentity: the tls.connect hook', () => {
  const cnOnly = { subject: { CN: 'mta-sts.example.com' } } as unknown as PeerCertificate;

  it('a certificate naming the host only in its subject CN is refused', () => {
    const err = checkCertificateIdentity('mta-sts.example.com', cnOnly);
    expect(err).toBeInstanceOf(CertificateIdentityError);
    expect(err).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID', problem: 'no-dns-id', message: expect.stringMatching(/no subjectAltName DNS-ID/) });
  });

  it('a DNS-ID for the host passes, whatever the CN says', () => {
    const cert = { subject: { CN: 'something.else' }, subjectaltname: 'DNS:mta-sts.example.com' } as unknown as PeerCertificate;
    expect(checkCertificateIdentity('mta-sts.example.com', cert)).toBeUndefined();
  });

  it('a mismatch names a bounded number of the certificate names', () => {
    const names = Array.from({ length: 300 }, (_, i) => `n${i}.example.net`);
    const err = checkCertificateIdentity('mx.example.com', { subjectaltname: names.map((n) => `DNS:${n}`).join(', ') } as PeerCertificate);
    expect(err?.message).toMatch(/^mx\.example\.com is not among the certificate's DNS-IDs \(n0\.example\.net, .*n9\.example\.net and 290 more\)$/);
  });
});
