import { describe, expect, it } from 'vitest';
import { parseTlsRptRecord, ruaProblem, selectTlsRptRecord } from '../../src/sts/tlsrpt.js';

const MAILTO = 'mailto:tlsrpt@example.com';
const HTTPS = 'https://reports.example.com/v1/tlsrpt';

describe('parseTlsRptRecord: RFC 8460 §3 tlsrpt-record', () => {
  // [record, rua, extensions]
  const good: Array<[string, string[], Array<[string, string]>]> = [
    [`v=TLSRPTv1;rua=${MAILTO}`, [MAILTO], []], // the RFC's mailto example
    [`v=TLSRPTv1; rua=${HTTPS}`, [HTTPS], []], // the RFC's https example
    [`v=TLSRPTv1; rua=${MAILTO};`, [MAILTO], []], // trailing field-delim is optional
    [`v=TLSRPTv1 ; rua=${MAILTO} ; `, [MAILTO], []], // field-delim = *WSP ";" *WSP
    [`v=TLSRPTv1;\trua=${MAILTO}\t;`, [MAILTO], []], // HTAB is WSP too
    [`v=TLSRPTv1; rua=${MAILTO},${HTTPS}`, [MAILTO, HTTPS], []], // a comma-separated list
    [`v=TLSRPTv1; rua=${MAILTO} , ${HTTPS}`, [MAILTO, HTTPS], []], // *WSP "," *WSP between URIs
    [`v=TLSRPTv1; rua=${MAILTO}; rua=${HTTPS}`, [MAILTO, HTTPS], []], // 1*(tlsrpt-field): rua may repeat
    ['v=TLSRPTv1; rua=mailto:a%21b@example.com', ['mailto:a%21b@example.com'], []], // "!" percent-encoded
    ['v=TLSRPTv1; rua=https://r.example.com/x?a=1&b=2', ['https://r.example.com/x?a=1&b=2'], []], // "=" and "&" inside a URI
    [`v=TLSRPTv1; ext=1; rua=${MAILTO}`, [MAILTO], [['ext', '1']]], // extension before rua
    [`v=TLSRPTv1; rua=${MAILTO}; a.b-c_d=x<y`, [MAILTO], [['a.b-c_d', 'x<y']]], // ext-name and ext-value characters
    [`v=TLSRPTv1; rua=${MAILTO}; RUA=x`, [MAILTO], [['RUA', 'x']]], // %s"rua=": "RUA" is an extension
  ];
  it.each(good)('accepts %j', (text, rua, extensions) => {
    expect(parseTlsRptRecord(text)).toEqual({ ok: true, record: { version: 'TLSRPTv1', rua, extensions } });
  });

  // [record, rule broken (matched against the message)]
  const bad: Array<[string, RegExp]> = [
    ['', /begin with v=TLSRPTv1/], // empty
    [`rua=${MAILTO}; v=TLSRPTv1`, /begin with v=TLSRPTv1/], // version first
    [`v=tlsrptv1; rua=${MAILTO}`, /begin with v=TLSRPTv1/], // %s: case-sensitive
    [`v=TLSRPTv2; rua=${MAILTO}`, /begin with v=TLSRPTv1/], // another version
    ['v=TLSRPTv1', /missing rua/], // no fields
    ['v=TLSRPTv1;', /missing rua/], // only a delimiter
    ['v=TLSRPTv1; ext=1', /missing rua/], // rua is required
    ['v=TLSRPTv1; RUA=mailto:a@example.com', /missing rua/], // "RUA" is not rua
    ['v=TLSRPTv1; rua=', /expected a URI/], // empty rua
    ['v=TLSRPTv1; rua= mailto:a@example.com', /expected a URI/], // no WSP after "rua="
    [`v=TLSRPTv1; rua=${MAILTO},`, /expected a URI/], // dangling comma
    ['v=TLSRPTv1; rua=tlsrpt@example.com', /not a URI with a scheme/], // a bare address is not a URI
    ['v=TLSRPTv1; rua=mailto:a%2@example.com', /two hex digits/], // broken pct-encoding
    ['v=TLSRPTv1; rua=mailto:a!b@example.com', /%21/], // "!" must be percent-encoded
    ['v=TLSRPTv1; rua=https://example.com/a b', /unexpected " "/], // no spaces in a URI
    [`v=TLSRPTv1 rua=${MAILTO}`, /unexpected " "/], // fields need ";"
    [`v=TLSRPTv1; rua ${MAILTO}`, /expected name=value/], // "=" after the name
    [`v=TLSRPTv1; rua=${MAILTO}; -x=1`, /tlsrpt-ext-name/], // ext-name starts with a letter or digit
    [`v=TLSRPTv1; rua=${MAILTO}; ${'x'.repeat(33)}=1`, /tlsrpt-ext-name/], // ext-name of 33 characters
    [`v=TLSRPTv1; rua=${MAILTO}; x=`, /tlsrpt-ext-value/], // ext-value is 1*(...)
    [`v=TLSRPTv1; rua=${MAILTO}; x=a=b`, /unexpected "="/], // "=" not in ext-value
    [`v=TLSRPTv1; rua=${MAILTO}; x=é`, /tlsrpt-ext-value/], // ext-value is ASCII
  ];
  it.each(bad)('rejects %j', (text, why) => {
    const result = parseTlsRptRecord(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(why);
  });
});

describe('ruaProblem: RFC 8460 §3 supported URIs', () => {
  it.each([MAILTO, HTTPS, 'mailto:Reports+tls@Example.COM', 'mailto:a%40b@example.com', 'https://198.51.100.7/r'])('%s can receive reports', (uri) => {
    expect(ruaProblem(uri)).toBeUndefined();
  });

  // [uri, why]
  const bad: Array<[string, RegExp]> = [
    ['http://reports.example.com/', /unsupported scheme "http"/], // https only
    ['ftp://reports.example.com/', /unsupported scheme "ftp"/],
    ['mailto:reports', /no local-part@domain/], // no domain
    ['mailto:@example.com', /no local-part@domain/], // no local part
    ['mailto:a@example', /single label/], // a bare TLD cannot receive mail for the public
    ['mailto:a@exa_mple.com', /not letters, digits/], // not a host name
    ['mailto:a%20b@example.com', /spaces/], // an encoded space in the local part
    ['mailto:a@example.com%E0%A4%A', /percent-encoded UTF-8/], // bad UTF-8
    ['https:///nohost', /no host/], // no host
  ];
  it.each(bad)('%s cannot', (uri, why) => {
    expect(ruaProblem(uri)).toMatch(why);
  });
});

describe('selectTlsRptRecord: RFC 8460 §3 record selection', () => {
  it('joins the strings of one record without spaces', () => {
    const got = selectTlsRptRecord([['v=TLSRPTv1; rua=mailto:tls', 'rpt@example.com']]);
    expect(got).toMatchObject({ kind: 'record', record: { rua: [MAILTO] } });
  });

  it('discards records that are not TLS-RPT', () => {
    const got = selectTlsRptRecord([['v=spf1 -all'], [`v=TLSRPTv1; rua=${MAILTO}`], ['v=TLSRPTv10; rua=x:y']]);
    expect(got).toMatchObject({ kind: 'record', record: { rua: [MAILTO] } });
  });

  it.each<[string, string[][]]>([
    ['no records at all', []],
    ['only other TXT records', [['v=spf1 -all'], ['google-site-verification=abc']]],
    ['a bare version without fields', [['v=TLSRPTv1']]],
  ])('none: %s', (_case, records) => {
    expect(selectTlsRptRecord(records)).toEqual({ kind: 'none' });
  });

  it('two TLS-RPT records are no TLS-RPT at all', () => {
    const got = selectTlsRptRecord([[`v=TLSRPTv1; rua=${MAILTO}`], [`v=TLSRPTv1; rua=${HTTPS}`]]);
    expect(got).toMatchObject({ kind: 'invalid', error: expect.stringMatching(/^2 v=TLSRPTv1 records/) });
  });

  it('a single malformed record is invalid, with the parser message', () => {
    expect(selectTlsRptRecord([['v=TLSRPTv1; ext=1']])).toMatchObject({ kind: 'invalid', error: expect.stringMatching(/missing rua/) });
  });
});
