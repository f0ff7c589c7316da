import { describe, expect, it } from 'vitest';
import { stsErrorOf } from './sts-error-of.js';
import { parsePolicy } from '../../src/sts/policy.js';
import type { Mode, Policy } from '../../src/sts/types.js';


/** Lines joined with LF, no final terminator. */
const lf = (...lines: string[]) => lines.join('\n');
/** A valid enforce policy for mx.example.com, with `more` lines appended. */
const enforce = (...more: string[]) => lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: mx.example.com', ...more);
/** version, mode none and max_age 1, with `more` lines appended: only the appended lines can break it. */
const none = (...more: string[]) => lf('version: STSv1', 'mode: none', 'max_age: 1', ...more);

const mx = (domain: string, wildcard = false) => ({ wildcard, domain });
const policy = (mode: Mode, maxAge: number, mxs: Policy['mx'], extensions: Policy['extensions'] = []): Policy => ({
  version: 'STSv1',
  mode,
  maxAge,
  mx: mxs,
  extensions,
});
const ENFORCE = policy('enforce', 86400, [mx('mx.example.com')]);
const NONE = policy('none', 1, []);

describe('parsePolicy: RFC 8461 §3.2 accepts', () => {
  // [rule, policy text, parsed]
  const good: Array<[string, string, Policy]> = [
    [
      'the RFC example (LF)',
      'version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n',
      policy('enforce', 604800, [mx('mail.example.com'), mx('example.net', true), mx('backupmx.example.com')]),
    ],
    ['CRLF terminators', 'version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\nmx: mx.example.com\r\n', ENFORCE],
    ['mixed LF and CRLF', 'version: STSv1\r\nmode: enforce\nmax_age: 86400\r\nmx: mx.example.com', ENFORCE],
    ['no final terminator', enforce(), ENFORCE],
    ['final LF', `${enforce()}\n`, ENFORCE],
    ['final CRLF', `${enforce()}\r\n`, ENFORCE],
    ['no WSP after ":"', 'version:STSv1\nmode:enforce\nmax_age:86400\nmx:mx.example.com', ENFORCE],
    ['several WSP and HTAB after ":"', 'version: \t STSv1\nmode:\tenforce\nmax_age:   86400\nmx:\t\tmx.example.com', ENFORCE],
    ['trailing WSP on a line', 'version: STSv1 \nmode: enforce\t\nmax_age: 86400 \t \nmx: mx.example.com  ', ENFORCE],
    ['trailing WSP before CRLF', 'version: STSv1 \r\nmode: enforce\t\r\nmax_age: 86400\r\nmx: mx.example.com \r\n', ENFORCE],
    ['fields in any order', lf('mx: mx.example.com', 'max_age: 86400', 'mode: enforce', 'version: STSv1'), ENFORCE],
    ['mode testing', lf('version: STSv1', 'mode: testing', 'max_age: 5', 'mx: mx.example.com'), policy('testing', 5, [mx('mx.example.com')])],
    ['mode none needs no mx', none(), NONE],
    ['mode none may still list mx', none('mx: mx.example.com'), policy('none', 1, [mx('mx.example.com')])],
    ['max_age 0', lf('version: STSv1', 'mode: none', 'max_age: 0'), policy('none', 0, [])],
    ['max_age 31557600 (the maximum)', lf('version: STSv1', 'mode: none', 'max_age: 31557600'), policy('none', 31557600, [])],
    ['max_age of 10 digits with leading zeros', lf('version: STSv1', 'mode: none', 'max_age: 0000086400'), policy('none', 86400, [])],
    ['mx lower-cased', enforce('mx: MX2.Example.COM'), policy('enforce', 86400, [mx('mx.example.com'), mx('mx2.example.com')])],
    ['mx A-label', enforce('mx: xn--bcher-kva.example'), policy('enforce', 86400, [mx('mx.example.com'), mx('xn--bcher-kva.example')])],
    ['mx repeated: all kept, in order', enforce('mx: mx.example.com'), policy('enforce', 86400, [mx('mx.example.com'), mx('mx.example.com')])],
    ['repeated mode: the first wins', enforce('mode: testing'), ENFORCE],
    ['repeated max_age: the first wins', enforce('max_age: 5'), ENFORCE],
    ['repeated version', enforce('version: STSv1'), ENFORCE],
    ['extension kept', none('foo: bar'), policy('none', 1, [], [['foo', 'bar']])],
    ['extension with inner spaces', none('foo: a b  c'), policy('none', 1, [], [['foo', 'a b  c']])],
    ['extension trailing WSP dropped', none('foo: a b \t'), policy('none', 1, [], [['foo', 'a b']])],
    ['extension with UTF-8', none('comment: grüße 👋 日本'), policy('none', 1, [], [['comment', 'grüße 👋 日本']])],
    ['extension with every VCHAR', none('x: !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'), policy('none', 1, [], [['x', '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~']])],
    ['extension value with ":"', none('url: https://example.com/x'), policy('none', 1, [], [['url', 'https://example.com/x']])],
    ['repeated extension: the first wins', none('foo: 1', 'foo: 2'), policy('none', 1, [], [['foo', '1']])],
    ['extension name of 32 characters', none(`${'a'.repeat(32)}: 1`), policy('none', 1, [], [['a'.repeat(32), '1']])],
    ['extension name with digits, "_", "-", "."', none('9a_b-c.d: 1'), policy('none', 1, [], [['9a_b-c.d', '1']])],
    ['keys are case-sensitive: "Mode" is an extension', enforce('Mode: testing'), policy('enforce', 86400, [mx('mx.example.com')], [['Mode', 'testing']])],
    ['"MX" is an extension, not an mx', enforce('MX: other.example'), policy('enforce', 86400, [mx('mx.example.com')], [['MX', 'other.example']])],
  ];
  it.each(good)('%s', (_rule, text, want) => {
    expect(parsePolicy(text)).toEqual(want);
  });
});

describe('parsePolicy: RFC 8461 §3.2 rejects', () => {
  // [rule, policy text, message]
  const bad: Array<[string, string, RegExp]> = [
    // sts-policy-record: structure
    ['empty body', '', /line 1: empty line/],
    ['only a terminator', '\n', /line 1: empty line/],
    ['empty line in the middle', lf('version: STSv1', '', 'mode: none', 'max_age: 1'), /line 2: empty line/],
    ['empty line at the end', `${none()}\n\n`, /line 4: empty line/],
    ['CRLF empty line at the end', `${none()}\r\n\r\n`, /line 4: empty line/],
    ['leading SP', none(' foo: bar'), /line 4: leading whitespace/],
    ['leading HTAB', lf('version: STSv1', '\tmode: none', 'max_age: 1'), /line 2: leading whitespace/],
    ['line without ":"', none('foo bar'), /line 4: no ":"/],
    ['SP between name and ":"', none('foo : bar'), /line 4: field name/],
    ['bare CR as a terminator', 'version: STSv1\rmode: none\rmax_age: 1', /line 1: bare CR/],
    ['bare CR at the very end', `${none()}\r`, /line 3: bare CR/],
    ['CR CR LF', 'version: STSv1\r\r\nmode: none\nmax_age: 1', /line 1: bare CR/],
    ['NUL in a value', none('foo: a\u0000b'), /line 4: foo: not VCHAR/],
    ['NUL before a name', none('\u0000foo: a'), /line 4: field name/],
    ['form feed as a separator', 'version: STSv1\fmode: none\nmax_age: 1', /line 1: version must be STSv1/],
    // required fields
    ['missing version', lf('mode: none', 'max_age: 1'), /missing version/],
    ['missing mode', lf('version: STSv1', 'max_age: 1'), /missing mode/],
    ['missing max_age', lf('version: STSv1', 'mode: none'), /missing max_age/],
    ['missing mx with mode enforce', lf('version: STSv1', 'mode: enforce', 'max_age: 1'), /missing mx.*enforce/],
    ['missing mx with mode testing', lf('version: STSv1', 'mode: testing', 'max_age: 1'), /missing mx.*testing/],
    ['"Mode: enforce" is no mode', lf('version: STSv1', 'Mode: enforce', 'max_age: 1', 'mx: mx.example.com'), /missing mode/],
    ['"Version: STSv1" is no version', lf('Version: STSv1', 'mode: none', 'max_age: 1'), /missing version/],
    ['"MX:" is no mx', lf('version: STSv1', 'mode: enforce', 'max_age: 1', 'MX: mx.example.com'), /missing mx/],
    // version
    ['version STSv2', lf('version: STSv2', 'mode: none', 'max_age: 1'), /line 1: version must be STSv1/],
    ['version STSv10', lf('version: STSv10', 'mode: none', 'max_age: 1'), /line 1: version must be STSv1/],
    ['version is case-sensitive', lf('version: stsv1', 'mode: none', 'max_age: 1'), /line 1: version must be STSv1/],
    ['repeated version must still be STSv1', none('version: STSv2'), /line 4: version must be STSv1/],
    ['empty version', lf('version:', 'mode: none', 'max_age: 1'), /line 1: empty value for version/],
    // mode
    ['unknown mode', lf('version: STSv1', 'mode: report', 'max_age: 1'), /line 2: mode must be/],
    ['mode is case-sensitive', lf('version: STSv1', 'mode: Enforce', 'max_age: 1'), /line 2: mode must be/],
    ['mode with extra text', lf('version: STSv1', 'mode: enforce now', 'max_age: 1'), /line 2: mode must be/],
    ['repeated mode must still be valid', enforce('mode: bogus'), /line 5: mode must be/],
    ['empty mode', lf('version: STSv1', 'mode:  ', 'max_age: 1'), /line 2: empty value for mode/],
    // max_age: 1*10(DIGIT), at most 31557600, read digit by digit
    ['max_age 31557601', lf('version: STSv1', 'mode: none', 'max_age: 31557601'), /line 3: max_age must be/],
    ['max_age 9999999999 (10 digits, too large)', lf('version: STSv1', 'mode: none', 'max_age: 9999999999'), /line 3: max_age must be/],
    ['max_age of 11 digits', lf('version: STSv1', 'mode: none', 'max_age: 00000000001'), /line 3: max_age must be/],
    ['max_age with "+"', lf('version: STSv1', 'mode: none', 'max_age: +1'), /line 3: max_age must be/],
    ['max_age negative', lf('version: STSv1', 'mode: none', 'max_age: -1'), /line 3: max_age must be/],
    ['max_age with exponent', lf('version: STSv1', 'mode: none', 'max_age: 1e3'), /line 3: max_age must be/],
    ['max_age in hex', lf('version: STSv1', 'mode: none', 'max_age: 0x10'), /line 3: max_age must be/],
    ['max_age with a fraction', lf('version: STSv1', 'mode: none', 'max_age: 1.0'), /line 3: max_age must be/],
    ['max_age with "_"', lf('version: STSv1', 'mode: none', 'max_age: 86_400'), /line 3: max_age must be/],
    ['max_age with inner space', lf('version: STSv1', 'mode: none', 'max_age: 1 0'), /line 3: max_age must be/],
    ['max_age in full-width digits', lf('version: STSv1', 'mode: none', 'max_age: １'), /line 3: max_age must be/],
    ['max_age in Arabic-Indic digits', lf('version: STSv1', 'mode: none', 'max_age: ١'), /line 3: max_age must be/],
    ['max_age not a number', lf('version: STSv1', 'mode: none', 'max_age: a'), /line 3: max_age must be/],
    ['max_age Infinity', lf('version: STSv1', 'mode: none', 'max_age: Infinity'), /line 3: max_age must be/],
    ['empty max_age', lf('version: STSv1', 'mode: none', 'max_age:'), /line 3: empty value for max_age/],
    ['repeated max_age must still be valid', enforce('max_age: x'), /line 5: max_age must be/],
    // mx: ["*."] Domain
    ['empty mx', enforce('mx:'), /line 5: empty value for mx/],
    ['mx with "*.*."', enforce('mx: *.*.example.com'), /line 5: mx .*leftmost label/],
    ['mx with "**."', enforce('mx: **.example.com'), /line 5: mx .*leftmost label/],
    ['mx with "*" inside a label', enforce('mx: *mx.example.com'), /line 5: mx .*leftmost label/],
    ['mx with a hyphen at a label end', enforce('mx: test.example-'), /line 5: mx .*inner hyphens/],
    ['mx with a trailing dot', enforce('mx: mx.example.com.'), /line 5: mx .*trailing dot/],
    ['mx with a U-label', enforce('mx: møx.example'), /line 5: mx .*inner hyphens/],
    ['mx with two values', enforce('mx: a.example b.example'), /line 5: mx /],
    ['mx of a single label', enforce('mx: localhost'), /line 5: mx .*single label/],
    // sts-policy-extension
    ['extension with an empty value', none('ext:'), /line 4: empty value for ext/],
    ['extension name of 33 characters', none(`${'a'.repeat(33)}: 1`), /line 4: field name/],
    ['extension name starting with "_"', none('_bad: test'), /line 4: field name/],
    ['extension name with "/"', none('a/b: test'), /line 4: field name/],
    ['extension name with non-ASCII', none('grüße: 1'), /line 4: field name/],
    ['empty field name', none(': x'), /line 4: field name/],
    ['HTAB inside an extension value', none('foo: a\tb'), /line 4: foo: not VCHAR/],
    ['DEL inside an extension value', none('foo: a\u007fb'), /line 4: foo: not VCHAR/],
    ['lone surrogate in an extension value', none('foo: a\ud800b'), /line 4: foo: not VCHAR/],
  ];
  it.each(bad)('%s', (_rule, text, message) => {
    const err = stsErrorOf(() => parsePolicy(text));
    expect(err.reason).toBe('parse');
    expect(err.message).toMatch(message);
  });
});
