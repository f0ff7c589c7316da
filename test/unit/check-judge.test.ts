import { describe, expect, it } from 'vitest';
import {
  advise,
  judgeMxCovered,
  judgeMxDns,
  judgeMxRecords,
  judgePolicy,
  judgePolicyFetch,
  judgePolicyHostDns,
  judgeProbe,
  judgeStsTxt,
  judgeTlsRpt,
  suggestId,
  summarize,
  type FetchOutcome,
} from '../../src/check/judge.js';
import type { Status, Step } from '../../src/check/types.js';
import type { CertificateFacts, StartTlsProbe } from '../../src/net/starttls-probe.js';
import { parsePolicy } from '../../src/sts/policy.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');
const DAY = 86_400_000;
const D = 'example.com';
const txt = (...records: string[]) => ({ kind: 'records' as const, records: records.map((r) => [r]) });
const dnsError = { kind: 'error' as const, message: '_x ESERVFAIL' };
const v4 = (...addresses: string[]) => addresses.map((address) => ({ address, family: 4 as const }));

describe('suggestId', () => {
  it('is UTC YYYYMMDDhhmmss: 14 digits, a valid RFC 8461 §3.1 sts-id', () => {
    expect(suggestId(NOW)).toBe('20261129120000');
  });
});

describe('judgeStsTxt: RFC 8461 §3.1', () => {
  // [answer, status, reason]
  const cases: Array<[string, Parameters<typeof judgeStsTxt>[1], Status, RegExp]> = [
    ['one valid record', txt('v=STSv1; id=20261129'), 'pass', /^v=STSv1, id 20261129$/],
    ['a valid record among others', txt('v=spf1 -all', 'v=STSv1; id=a1'), 'pass', /id a1/],
    ['NXDOMAIN', { kind: 'nxdomain' }, 'fail', /^no TXT record at _mta-sts\.example\.com$/],
    ['NODATA', { kind: 'nodata' }, 'fail', /^no TXT record/],
    ['only other TXT records', txt('v=spf1 -all'), 'fail', /1 TXT record\(s\) at _mta-sts\.example\.com, none beginning with "v=STSv1;"/],
    ['two STSv1 records', txt('v=STSv1; id=1', 'v=STSv1; id=2'), 'fail', /^2 v=STSv1 records/],
    ['a bad id', txt('v=STSv1; id=a-b'), 'fail', /^invalid record: id must be/],
    ['no id', txt('v=STSv1; x=1'), 'fail', /^invalid record: missing id/],
    ['SERVFAIL', dnsError, 'fail', /^the TXT lookup of _mta-sts\.example\.com failed: _x ESERVFAIL$/],
  ];
  it.each(cases)('%s: %s', (_case, answer, status, reason) => {
    const { step } = judgeStsTxt(D, answer, NOW);
    expect(step).toMatchObject({ id: 'txt', title: '_mta-sts TXT record', status, reason: expect.stringMatching(reason) });
    expect(step.fix === undefined).toBe(status === 'pass');
  });

  it('returns the id of a valid record', () => {
    expect(judgeStsTxt(D, txt('v=STSv1; id=abc'), NOW).id).toBe('abc');
  });

  it('the fix for a missing record is the record to publish, with a fresh id', () => {
    expect(judgeStsTxt(D, { kind: 'nxdomain' }, NOW).step.fix).toBe(
      'publish _mta-sts.example.com. TXT "v=STSv1; id=20261129120000" once the policy file is served (RFC 8461 §3.1)',
    );
  });

  it('the fix for several records says keep one', () => {
    expect(judgeStsTxt(D, txt('v=STSv1; id=1', 'v=STSv1; id=2'), NOW).step.fix).toMatch(/^keep exactly one/);
  });
});

describe('judgeTlsRpt: RFC 8460 §3', () => {
  const cases: Array<[string, Parameters<typeof judgeTlsRpt>[1], Status, RegExp]> = [
    ['a mailto rua', txt('v=TLSRPTv1; rua=mailto:r@example.com'), 'pass', /^reports go to mailto:r@example\.com$/],
    ['two rua URIs', txt('v=TLSRPTv1; rua=mailto:r@example.com,https://r.example.com/x'), 'pass', /mailto:r@example\.com, https:\/\/r\.example\.com\/x/],
    ['not published (NXDOMAIN)', { kind: 'nxdomain' }, 'warn', /^no TLS-RPT record at _smtp\._tls\.example\.com/],
    ['not published (other TXT only)', txt('hello'), 'warn', /^no "v=TLSRPTv1;" record/],
    ['lookup failed', dnsError, 'warn', /failed/],
    ['two records', txt('v=TLSRPTv1; rua=mailto:a@example.com', 'v=TLSRPTv1; rua=mailto:b@example.com'), 'fail', /^senders ignore it: 2 v=TLSRPTv1 records/],
    ['no rua', txt('v=TLSRPTv1; x=1'), 'fail', /missing rua/],
    ['only an unsupported scheme', txt('v=TLSRPTv1; rua=http://r.example.com/'), 'fail', /^no usable rua URI: http:\/\/r\.example\.com\/: unsupported scheme "http"/],
    ['one good, one bad URI', txt('v=TLSRPTv1; rua=mailto:r@example.com,mailto:nobody'), 'warn', /^some rua URIs cannot receive reports: mailto:nobody/],
  ];
  it.each(cases)('%s: %s', (_case, answer, status, reason) => {
    const step = judgeTlsRpt(D, answer);
    expect(step).toMatchObject({ id: 'tlsrpt', status, reason: expect.stringMatching(reason) });
    expect(step.fix === undefined).toBe(status === 'pass');
  });
});

describe('address steps: the SSRF rule of the fetcher', () => {
  it.each<[string, string[], boolean, Status, RegExp]>([
    ['public', ['192.0.1.10'], false, 'pass', /^mta-sts\.example\.com resolves to 192\.0\.1\.10$/],
    ['loopback only', ['127.0.0.1'], false, 'fail', /only to non-public addresses \(127\.0\.0\.1\): senders will not connect/],
    ['loopback only, allowed', ['127.0.0.1'], true, 'pass', /resolves to 127\.0\.0\.1/],
    ['mixed', ['192.0.1.10', '10.0.0.1'], false, 'warn', /10\.0\.0\.1 not public/],
  ])('policy host, %s', (_case, addresses, allowPrivate, status, reason) => {
    expect(judgePolicyHostDns(D, v4(...addresses), allowPrivate)).toMatchObject({ id: 'policy-host-dns', status, reason: expect.stringMatching(reason) });
  });

  it('a policy host that does not resolve fails', () => {
    expect(judgePolicyHostDns(D, dnsError, true)).toMatchObject({ status: 'fail', reason: expect.stringMatching(/^mta-sts\.example\.com does not resolve/) });
  });

  it('an MX host keeps only the usable addresses for probing', () => {
    const { step, usable } = judgeMxDns('mx.example.com', v4('192.0.1.10', '10.0.0.1'), false);
    expect(usable).toEqual(['192.0.1.10']);
    expect(step).toMatchObject({ id: 'mx-dns', mx: 'mx.example.com', status: 'warn', details: { refused: ['10.0.0.1'] } });
    expect(judgeMxDns('mx.example.com', v4('10.0.0.1'), false).usable).toEqual([]);
    expect(judgeMxDns('mx.example.com', v4('10.0.0.1'), true)).toMatchObject({ usable: ['10.0.0.1'], step: { status: 'pass', reason: 'resolves to 10.0.0.1' } });
    expect(judgeMxDns('mx.example.com', dnsError, true)).toMatchObject({ usable: [], step: { status: 'fail' } });
  });
});

describe('judgePolicyFetch: RFC 8461 §3.3, from the fetcher reason classes', () => {
  const URL = 'https://mta-sts.example.com/.well-known/mta-sts.txt';
  const failed = (reason: Extract<FetchOutcome, { ok: false }>['reason'], code: string, message = `${URL}: ${code}`): FetchOutcome => ({ ok: false, reason, code, message });

  it('a fetched policy passes both steps', () => {
    const steps = judgePolicyFetch(D, { ok: true, text: 'x', bytes: 1 });
    expect(steps.map((s) => [s.id, s.status])).toEqual([['policy-host-tls', 'pass'], ['policy-host-http', 'pass']]);
    expect(steps[1]!.reason).toBe('200, text/plain, 1 bytes');
  });

  // [outcome, the https step's reason, its fix]
  const tls: Array<[FetchOutcome, RegExp, RegExp]> = [
    [failed('tls', 'ERR_TLS_CERT_ALTNAME_INVALID'), /^certificate not valid for mta-sts\.example\.com/, /subjectAltName includes mta-sts\.example\.com/],
    [failed('tls', 'CERT_HAS_EXPIRED'), /^certificate expired/, /^renew/],
    [failed('tls', 'CERT_NOT_YET_VALID'), /^certificate not yet valid/, /clock/],
    [failed('tls', 'DEPTH_ZERO_SELF_SIGNED_CERT'), /^certificate self-signed/, /public CA/],
    [failed('tls', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), /does not chain to a trusted root/, /full chain/],
    [failed('tls', 'ERR_SSL_UNSUPPORTED_PROTOCOL'), /^no TLS 1\.2 or newer/, /TLS 1\.2 and 1\.3/],
    [failed('tls', 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION'), /^no TLS 1\.2 or newer/, /TLS 1\.2 and 1\.3/],
    [failed('tls', 'ERR_SSL_WRONG_VERSION_NUMBER'), /plain HTTP\?/, /serve HTTPS on port 443/],
    [failed('tls', 'ERR_SSL_SOMETHING_ELSE'), /^TLS failed: ERR_SSL_SOMETHING_ELSE/, /TLS 1\.2 or newer/],
    [failed('connect', 'ECONNREFUSED'), /^cannot connect to mta-sts\.example\.com:443 \(ECONNREFUSED\)/, /port 443/],
    [failed('timeout', 'UND_ERR_CONNECT_TIMEOUT'), /^timed out \(UND_ERR_CONNECT_TIMEOUT\)$/, /promptly/],
    [failed('timeout', '', `${URL}: no complete answer in time`), /^timed out \(no complete answer in time\)$/, /promptly/],
    [failed('connect', '', `${URL}: socket hang up`), /^cannot connect to mta-sts\.example\.com:443 \(socket hang up\)$/, /port 443/],
    [failed('address', '', 'mta-sts.example.com resolves only to non-public addresses (10.0.0.1)'), /non-public/, /public A\/AAAA/],
  ];
  it.each(tls)('connection failure %j', (outcome, reason, fix) => {
    const steps = judgePolicyFetch(D, outcome);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ id: 'policy-host-tls', status: 'fail', reason: expect.stringMatching(reason), fix: expect.stringMatching(fix) });
  });

  const http: Array<[FetchOutcome, RegExp, RegExp]> = [
    [failed('http-status', '', `${URL}: HTTP 404`), /^HTTP 404$/, /answer GET .* with 200/],
    [failed('http-status', '', `${URL}: HTTP 301 (redirect to https://www.example.com/)`), /redirect to/, /do not follow redirects/],
    [failed('content-type', '', `${URL}: Content-Type "text/html", want text/plain`), /^Content-Type "text\/html"/, /text\/plain/],
    [failed('size', '', `${URL}: body exceeds 65536 bytes`), /exceeds 65536/, /under 65536 bytes/],
  ];
  it.each(http)('response failure %j', (outcome, reason, fix) => {
    const steps = judgePolicyFetch(D, outcome);
    expect(steps.map((s) => [s.id, s.status])).toEqual([['policy-host-tls', 'pass'], ['policy-host-http', 'fail']]);
    expect(steps[1]).toMatchObject({ reason: expect.stringMatching(reason), fix: expect.stringMatching(fix) });
  });

  it('a body that is not UTF-8 passes the response steps (the policy step reports it)', () => {
    const steps = judgePolicyFetch(D, failed('parse', '', `${URL}: body is not valid UTF-8`));
    expect(steps.map((s) => s.status)).toEqual(['pass', 'pass']);
  });
});

describe('judgePolicy: RFC 8461 §3.2 and max_age sanity', () => {
  const body = (mode: string, maxAge: number, mx = 'mx: mx.example.com\n') => `version: STSv1\nmode: ${mode}\n${mx}max_age: ${maxAge}\n`;
  it.each<[string, string, Status, RegExp]>([
    ['enforce, a week', body('enforce', 604800), 'pass', /^mode enforce, max_age 604800 s \(7 d\), mx mx\.example\.com$/],
    ['enforce, exactly a day', body('enforce', 86400), 'pass', /max_age 86400 s \(1 d\)/],
    ['enforce, under a day', body('enforce', 86399), 'warn', /under a day/],
    ['enforce, zero', body('enforce', 0), 'warn', /max_age 0 s \(0 s\).*under a day/],
    ['testing, an hour', body('testing', 3600), 'pass', /mode testing, max_age 3600 s \(1 h\)/],
    ['none', body('none', 86400, ''), 'warn', /senders drop the policy/],
    ['a grammar error', 'version: STSv1\nmode: enforced\nmax_age: 1\nmx: a.example\n', 'fail', /^line 2: mode must be/],
    ['missing mx', 'version: STSv1\nmode: enforce\nmax_age: 86400\n', 'fail', /missing mx/],
  ])('%s', (_case, text, status, reason) => {
    const { step, policy } = judgePolicy(text);
    expect(step).toMatchObject({ id: 'policy', status, reason: expect.stringMatching(reason) });
    expect(policy === undefined).toBe(status === 'fail');
  });

  it('a fetch-level parse error (not UTF-8) fails with that message', () => {
    expect(judgePolicy({ error: 'body is not valid UTF-8' }).step).toMatchObject({ status: 'fail', reason: 'body is not valid UTF-8' });
  });

  it('the under-a-day warning suggests a week', () => {
    expect(judgePolicy(body('enforce', 3600)).step.fix).toMatch(/e\.g\. 604800/);
  });
});

describe('judgePolicy: every deviation, forgiven or not, with its line, rule and fix', () => {
  const ENFORCE = 'version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 604800\n';
  const judged = (text: string) => judgePolicy(text).step;

  // [case, policy text, status, reason, fix]
  it.each<[string, string, Status, RegExp, RegExp]>([
    ['an empty line at the end', `${ENFORCE}\n`, 'warn', /line 5: empty line at the end/,
      /^remove the empty line at the end: strict senders such as mox treat this policy as missing$/],
    ['CRLF empty lines at the end', ENFORCE.replace(/\n/g, '\r\n') + '\r\n\r\n', 'warn', /lines 5-6: empty lines at the end/, /remove the empty lines at the end/],
    ['an empty line at the start', `\n${ENFORCE}`, 'warn', /line 1: empty line at the start/, /remove the empty line at the start/],
    ['empty lines between every field', ENFORCE.replace(/\n/g, '\n\n'), 'warn', /lines 2, 4, 6: empty lines between fields .*; line 8: empty line at the end/,
      /remove the empty lines between fields: .*; remove the empty line at the end/],
    ['a whitespace-only line', `version: STSv1\n \t\nmode: enforce\nmx: mx1.example.com\nmax_age: 604800\n`, 'warn', /line 2: empty line between fields/, /remove the empty line between fields/],
    ['mx with a trailing dot', ENFORCE.replace('mx1.example.com', 'mx1.example.com.'), 'warn', /line 3: mx value "mx1\.example\.com\." ends in a dot/,
      /write it as "mx: mx1\.example\.com", without the final dot: strict senders such as mox/],
    ['a wildcard mx with a trailing dot', ENFORCE.replace('mx1.example.com', '*.example.com.'), 'warn', /line 3: mx value "\*\.example\.com\." ends in a dot/,
      /"mx: \*\.example\.com", without the final dot/],
    ['a BOM', `\ufeff${ENFORCE}`, 'warn', /line 1: a UTF-8 byte order mark/, /save the file as UTF-8 without a BOM/],
  ])('%s: warned', (_case, text, status, reason, fix) => {
    const step = judged(text);
    expect(step).toMatchObject({ id: 'policy', status, reason: expect.stringMatching(reason), fix: expect.stringMatching(fix) });
    // The policy is read as its publisher meant it, and the deviations are in the --json details.
    expect(step.reason).toMatch(/^mode enforce, max_age 604800 s \(7 d\), mx [^;]+; /);
    expect((step.details as { deviations: unknown[] }).deviations.length).toBeGreaterThan(0);
    expect(judgePolicy(text).policy?.mode).toBe('enforce');
  });

  it('a clean policy has no deviations in its details', () => {
    expect(judged(ENFORCE).details).not.toHaveProperty('deviations');
  });

  it('an empty line in a failing policy is warned about beside every grammar problem', () => {
    const step = judged('version: STSv1\nmode: enforced\n  max_age: 604800\nmx: alt*.example.com\nmx: mx1.example.com.\n\n');
    expect(step.status).toBe('fail');
    expect(step.reason).toMatch(/^line 2: mode must be .*; line 3: leading whitespace .*; line 4: mx "alt\*\.example\.com": "\*" only as a whole leftmost label .*; line 5: mx value "mx1\.example\.com\." ends in a dot; line 6: empty line at the end/);
    expect(step.fix).toMatch(/^follow the RFC 8461 §3\.2 grammar.*; write it as "mx: mx1\.example\.com".*; remove the empty line at the end: strict senders/);
    expect(step.details).toMatchObject({ problems: [expect.stringMatching(/^line 2/), expect.stringMatching(/^line 3/), expect.stringMatching(/^line 4/), expect.stringMatching(/^missing max_age/)] });
  });

  it('warnings of the policy itself come first, the deviations after them', () => {
    const step = judged('version: STSv1\nmode: none\nmax_age: 86400\n\n');
    expect(step.status).toBe('warn');
    expect(step.reason).toMatch(/senders drop the policy; line 4: empty line at the end/);
    expect(step.fix).toMatch(/^if you are removing MTA-STS.*; remove the empty line at the end/);
  });
});

describe('judgeMxRecords', () => {
  it('lists the MX hosts by priority, without trailing dots, lower case, once each', () => {
    const { step, hosts } = judgeMxRecords(D, {
      kind: 'records',
      records: [
        { exchange: 'MX1.example.com.', priority: 10 },
        { exchange: 'mx2.example.com', priority: 20 },
        { exchange: 'mx1.example.com', priority: 30 },
      ],
    });
    expect(hosts).toEqual(['mx1.example.com', 'mx2.example.com']);
    expect(step).toMatchObject({ status: 'pass', reason: '10 mx1.example.com, 20 mx2.example.com, 30 mx1.example.com' });
  });

  it.each<[string, Parameters<typeof judgeMxRecords>[1], Status, string[], RegExp]>([
    ['no MX: implicit MX is the domain itself (RFC 5321 §5.1)', { kind: 'nodata' }, 'warn', [D], /implicit MX/],
    ['null MX (RFC 7505): nothing to probe', { kind: 'records', records: [{ exchange: '', priority: 0 }] }, 'warn', [], /null MX/],
    ['NXDOMAIN', { kind: 'nxdomain' }, 'fail', [], /does not exist/],
    ['SERVFAIL', dnsError, 'fail', [], /MX lookup of example\.com failed/],
  ])('%s', (_case, answer, status, hosts, reason) => {
    expect(judgeMxRecords(D, answer)).toMatchObject({ hosts, step: { status, reason: expect.stringMatching(reason) } });
  });
});

describe('judgeMxCovered: RFC 8461 §4.1', () => {
  const policy = parsePolicy('version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.pool.example.net\nmax_age: 86400\n');
  it.each<[string, Status, RegExp]>([
    ['mx1.example.com', 'pass', /^matches mx: mx1\.example\.com$/],
    ['a.pool.example.net', 'pass', /^matches mx: \*\.pool\.example\.net$/],
    ['a.b.pool.example.net', 'fail', /no mx pattern/], // one label only
    ['pool.example.net', 'fail', /no mx pattern/],
    ['mx2.example.com', 'fail', /no mx pattern/],
    ['192.0.2.1', 'fail', /not a host name/],
  ])('%s: %s', (host, status, reason) => {
    expect(judgeMxCovered(host, policy)).toMatchObject({ id: 'mx-covered', mx: host, status, reason: expect.stringMatching(reason) });
  });

  it('the fix names the line to add', () => {
    expect(judgeMxCovered('mx2.example.com', policy).fix).toBe('add "mx: mx2.example.com" (or "mx: *.example.com") to the policy, then bump the TXT id');
    // Never "*.com".
    expect(judgeMxCovered('example.com', policy).fix).toBe('add "mx: example.com" to the policy, then bump the TXT id');
  });
});

describe('judgeProbe: RFC 8461 §4.2 and §5', () => {
  const H = 'mx.example.com';
  const A = '192.0.1.25';
  const cert = (over: Partial<CertificateFacts> = {}): CertificateFacts => ({
    subject: 'CN=mx.example.com',
    issuer: 'CN=CA',
    dnsNames: [H],
    validFrom: new Date(NOW - 30 * DAY).toISOString(),
    validTo: new Date(NOW + 60 * DAY).toISOString(),
    fingerprint256: 'AA:BB',
    ...over,
  });
  const tls = (over: Partial<Extract<StartTlsProbe, { kind: 'tls' }>> = {}): StartTlsProbe => ({
    kind: 'tls',
    protocol: 'TLSv1.3',
    cipher: 'TLS_AES_256_GCM_SHA384',
    authorized: true,
    authorizationError: null,
    certificate: cert(),
    ...over,
  });
  const summary = (steps: Step[]) => steps.map((s) => `${s.id}:${s.status}`);

  it('a good server passes STARTTLS, certificate and TLS version', () => {
    const steps = judgeProbe(H, A, tls(), NOW);
    expect(summary(steps)).toEqual(['mx-starttls:pass', 'mx-certificate:pass', 'mx-tls-version:pass']);
    expect(steps.every((s) => s.mx === H && s.address === A)).toBe(true);
    expect(steps[1]!.reason).toBe(`trusted, valid for ${H}, expires 2027-01-28 (60 days)`);
    expect(steps[2]!.reason).toBe('TLSv1.3, TLS_AES_256_GCM_SHA384');
  });

  // [probe, STARTTLS reason]
  const noTls: Array<[StartTlsProbe, RegExp]> = [
    [{ kind: 'connect-failed', error: 'ECONNREFUSED' }, /^cannot connect to port 25: ECONNREFUSED$/],
    [{ kind: 'timeout', stage: 'banner' }, /^no answer in time \(at the banner stage\)$/],
    [{ kind: 'broken', stage: 'ehlo', error: 'connection closed' }, /broke at the ehlo stage: connection closed/],
    [{ kind: 'refused', stage: 'banner', reply: '554 no service' }, /^greeting: "554 no service"$/],
    [{ kind: 'refused', stage: 'starttls', reply: '454 TLS not available' }, /^reply to STARTTLS: "454 TLS not available"$/],
    [{ kind: 'refused', stage: 'ehlo', reply: 'x'.repeat(500) }, /^reply to EHLO: "x{160}…"$/],
    [{ kind: 'no-starttls', extensions: ['PIPELINING'] }, /^STARTTLS is not offered/],
    [{ kind: 'tls-failed', error: 'ECONNRESET' }, /handshake failed: ECONNRESET/],
  ];
  it.each(noTls)('%j fails STARTTLS and judges nothing further', (probe, reason) => {
    const steps = judgeProbe(H, A, probe, NOW);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ id: 'mx-starttls', status: 'fail', reason: expect.stringMatching(reason), fix: expect.any(String) });
  });

  // [probe, certificate status, reason]
  const certs: Array<[string, StartTlsProbe, Status, RegExp]> = [
    ['expires in 13 days', tls({ certificate: cert({ validTo: new Date(NOW + 13 * DAY + 1000).toISOString() }) }), 'warn', /^expires in 13 day\(s\), on 2026-12-12$/],
    ['expires in exactly 14 days', tls({ certificate: cert({ validTo: new Date(NOW + 14 * DAY).toISOString() }) }), 'pass', /14 days/],
    ['expired (OpenSSL says so first)', tls({ authorized: false, authorizationError: 'CERT_HAS_EXPIRED', certificate: cert({ validTo: new Date(NOW - DAY).toISOString() }) }), 'fail', /^expired on 2026-11-28$/],
    ['not yet valid', tls({ authorized: false, authorizationError: 'CERT_NOT_YET_VALID', certificate: cert({ validFrom: new Date(NOW + DAY).toISOString() }) }), 'fail', /^not valid before 2026-11-30/],
    ['self-signed', tls({ authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'fail', /^self-signed \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/],
    ['unknown CA', tls({ authorized: false, authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), 'fail', /^does not chain to a trusted root/],
    ['wrong name', tls({ certificate: cert({ dnsNames: ['other.example.com'] }) }), 'fail', /^not valid for mx\.example\.com \(names: other\.example\.com\)$/],
    ['no DNS SAN (no CN fallback, RFC 9525)', tls({ certificate: cert({ subject: 'CN=mx.example.com', dnsNames: [] }) }), 'fail', /^no DNS names in subjectAltName$/],
    ['wildcard as the whole left-most label', tls({ certificate: cert({ dnsNames: ['*.example.com'] }) }), 'pass', /^trusted, valid for mx\.example\.com/],
    ['partial wildcard matches nothing (RFC 9525 §6.3)', tls({ certificate: cert({ dnsNames: ['m*.example.com'] }) }), 'fail', /^not valid for mx\.example\.com/],
    ['wildcard covers one label only', tls({ certificate: cert({ dnsNames: ['*.com'] }) }), 'fail', /^not valid for mx\.example\.com/],
    ['no certificate', tls({ certificate: null }), 'fail', /^no certificate presented$/],
    [
      'wrong name and expiring: both reported, the worst status wins',
      tls({ certificate: cert({ dnsNames: ['other.example.com'], validTo: new Date(NOW + 3 * DAY).toISOString() }) }),
      'fail',
      /^not valid for mx\.example\.com .*; expires in 3 day\(s\)/,
    ],
  ];
  it.each(certs)('certificate %s', (_case, probe, status, reason) => {
    const steps = judgeProbe(H, A, probe, NOW);
    expect(steps[0]!.status).toBe('pass');
    const c = steps.find((s) => s.id === 'mx-certificate')!;
    expect(c).toMatchObject({ status, reason: expect.stringMatching(reason) });
    expect(c.fix === undefined).toBe(status === 'pass');
  });

  it.each<[string | null, Status]>([
    ['TLSv1.3', 'pass'],
    ['TLSv1.2', 'pass'],
    ['TLSv1.1', 'fail'],
    ['TLSv1', 'fail'],
    [null, 'fail'],
  ])('TLS version %s: %s', (protocol, status) => {
    const v = judgeProbe(H, A, tls({ protocol }), NOW).find((s) => s.id === 'mx-tls-version')!;
    expect(v.status).toBe(status);
  });
});

describe('advise: the next rollout step', () => {
  const s = (id: Step['id'], status: Status, reason = ''): Step => ({ id, title: id, status, reason });
  const clean = [s('txt', 'pass'), s('tlsrpt', 'pass'), s('policy', 'pass'), s('mx-starttls', 'pass')];
  const policy = (mode: string) => parsePolicy(`version: STSv1\nmode: ${mode}\nmx: mx.example.com\nmax_age: 86400\n`);
  const advice = (steps: Step[], mode?: string) => advise({ domain: D, steps, now: NOW, ...(mode ? { policy: policy(mode) } : {}) }).join('\n');

  it.each<[string, Step[], string | undefined, RegExp]>([
    ['no policy served: serve it first, in testing mode', [s('txt', 'fail', 'no TXT record at x')], undefined, /^Serve the policy at https:\/\/mta-sts\.example\.com\/\.well-known\/mta-sts\.txt first, in testing mode/],
    ['policy served, no TXT: publish it', [s('txt', 'fail', 'no TXT record at x'), s('tlsrpt', 'pass')], 'testing', /^The policy is served: publish _mta-sts\.example\.com\. TXT "v=STSv1; id=20261129120000"/],
    ['policy served, bad TXT: fix it', [s('txt', 'fail', '2 v=STSv1 records'), s('tlsrpt', 'pass')], 'testing', /^Fix the _mta-sts\.example\.com TXT record/],
    ['no TLS-RPT', [s('txt', 'pass'), s('tlsrpt', 'warn')], 'testing', /Publish a valid TLS-RPT record/],
    ['testing and clean: enforce, then bump the id', clean, 'testing', /Testing mode is clean\. .*switch to "mode: enforce".*change the TXT id/],
    ['testing with a failure: fix before enforce', [...clean, s('mx-certificate', 'fail')], 'testing', /Fix the failures above before switching to enforce/],
    ['enforce and clean', clean, 'enforce', /^Enforced and clean/],
    ['enforce with a failure', [...clean, s('mx-covered', 'fail')], 'enforce', /enforced and something fails/],
    ['enforce with a warning', [...clean, s('mx-certificate', 'warn')], 'enforce', /^Enforced; see the warnings above/],
    ['none: the removal procedure', clean, 'none', /Removing MTA-STS \(RFC 8461 §8\.3\)/],
  ])('%s', (_case, steps, mode, want) => {
    expect(advice(steps, mode)).toMatch(want);
  });

  it('always reminds to bump the id when the policy changes, once it is published', () => {
    expect(advice(clean, 'enforce')).toMatch(/update the file first, then the TXT id \(e\.g\. id=20261129120000\)/);
    expect(advice([s('txt', 'fail', 'no TXT record'), s('tlsrpt', 'pass')], 'enforce')).not.toMatch(/update the file first/);
  });

  it('no enforce advice while testing has failures', () => {
    expect(advice([...clean, s('mx-starttls', 'fail')], 'testing')).not.toMatch(/switch to "mode: enforce"/);
  });
});

describe('summarize', () => {
  const s = (status: Status): Step => ({ id: 'txt', title: 't', status, reason: '' });
  it.each<[Status[], Status]>([
    [['pass', 'pass'], 'pass'],
    [['pass', 'warn'], 'warn'],
    [['warn', 'fail', 'pass'], 'fail'],
    [[], 'pass'],
  ])('%j is %s', (statuses, want) => {
    const r = summarize(D, statuses.map(s), []);
    expect(r.status).toBe(want);
    expect(r.counts.pass + r.counts.warn + r.counts.fail).toBe(statuses.length);
  });
});
