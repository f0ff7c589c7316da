import { describe, expect, it } from 'vitest';
import { stsErrorOf } from './sts-error-of.js';
import { diagnosePolicy, parsePolicy, POLICY_REPORT_LIMIT, readPolicy } from '../../src/sts/policy.js';
import type { Deviation, DeviationRule, Mode, Policy } from '../../src/sts/types.js';

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

const dev = (rule: DeviationRule, ...lines: number[]): Deviation[] => lines.map((line) => ({ rule, line }));
const BOM = '\ufeff';

/** RFC 8461 §3.2 reads `text` as `want`, with exactly the forgiven `deviations` (none by default). */
function good(text: string, want: Policy, deviations: Deviation[] = []): void {
  it(`accepts ${JSON.stringify(text.length > 90 ? `${text.slice(0, 90)}…` : text)}`, () => {
    expect(readPolicy(text)).toEqual({ policy: want, deviations });
    expect(parsePolicy(text)).toEqual(want);
  });
}

/** `text` is no policy: StsError('parse') whose message names the line and rule. */
function bad(text: string, message: RegExp): void {
  it(`rejects ${JSON.stringify(text.length > 90 ? `${text.slice(0, 90)}…` : text)}`, () => {
    const err = stsErrorOf(() => parsePolicy(text));
    expect(err.reason).toBe('parse');
    expect(err.message).toMatch(message);
  });
}

describe('parsePolicy: RFC 8461 §3.2 accepts', () => {
  good('version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n',
    policy('enforce', 604800, [mx('mail.example.com'), mx('example.net', true), mx('backupmx.example.com')])); // the RFC example (LF)
  good('version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\nmx: mx.example.com\r\n', ENFORCE); // CRLF terminators
  good('version: STSv1\r\nmode: enforce\nmax_age: 86400\r\nmx: mx.example.com', ENFORCE); // mixed LF and CRLF
  good(enforce(), ENFORCE); // no final terminator
  good(`${enforce()}\n`, ENFORCE); // final LF
  good(`${enforce()}\r\n`, ENFORCE); // final CRLF
  good('version:STSv1\nmode:enforce\nmax_age:86400\nmx:mx.example.com', ENFORCE); // no WSP after ":"
  good('version: \t STSv1\nmode:\tenforce\nmax_age:   86400\nmx:\t\tmx.example.com', ENFORCE); // several WSP and HTAB after ":"
  good('version: STSv1 \nmode: enforce\t\nmax_age: 86400 \t \nmx: mx.example.com  ', ENFORCE); // trailing WSP on a line
  good('version: STSv1 \r\nmode: enforce\t\r\nmax_age: 86400\r\nmx: mx.example.com \r\n', ENFORCE); // trailing WSP before CRLF
  good(lf('mx: mx.example.com', 'max_age: 86400', 'mode: enforce', 'version: STSv1'), ENFORCE); // fields in any order
  good(lf('version: STSv1', 'mode: testing', 'max_age: 5', 'mx: mx.example.com'), policy('testing', 5, [mx('mx.example.com')])); // mode testing
  good(none(), NONE); // mode none needs no mx
  good(none('mx: mx.example.com'), policy('none', 1, [mx('mx.example.com')])); // mode none may still list mx
  good(lf('version: STSv1', 'mode: none', 'max_age: 0'), policy('none', 0, [])); // max_age 0
  good(lf('version: STSv1', 'mode: none', 'max_age: 31557600'), policy('none', 31557600, [])); // max_age 31557600 (the maximum)
  good(lf('version: STSv1', 'mode: none', 'max_age: 0000086400'), policy('none', 86400, [])); // max_age of 10 digits with leading zeros
  good(enforce('mx: MX2.Example.COM'), policy('enforce', 86400, [mx('mx.example.com'), mx('mx2.example.com')])); // mx lower-cased
  good(enforce('mx: xn--bcher-kva.example'), policy('enforce', 86400, [mx('mx.example.com'), mx('xn--bcher-kva.example')])); // mx A-label
  good(enforce('mx: mx.example.com'), policy('enforce', 86400, [mx('mx.example.com'), mx('mx.example.com')])); // mx repeated: all kept, in order
  good(enforce('mode: testing'), ENFORCE); // repeated mode: the first wins
  good(enforce('max_age: 5'), ENFORCE); // repeated max_age: the first wins
  good(enforce('version: STSv1'), ENFORCE); // repeated version
  good(none('foo: bar'), policy('none', 1, [], [['foo', 'bar']])); // extension kept
  good(none('foo: a b  c'), policy('none', 1, [], [['foo', 'a b  c']])); // extension with inner spaces
  good(none('foo: a b \t'), policy('none', 1, [], [['foo', 'a b']])); // extension trailing WSP dropped
  good(none('comment: grüße 👋 日本'), policy('none', 1, [], [['comment', 'grüße 👋 日本']])); // extension with UTF-8
  good(none('x: !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'), policy('none', 1, [], [['x', '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~']])); // extension with every VCHAR
  good(none('url: https://example.com/x'), policy('none', 1, [], [['url', 'https://example.com/x']])); // extension value with ":"
  good(none('foo: 1', 'foo: 2'), policy('none', 1, [], [['foo', '1']])); // repeated extension: the first wins
  good(none(`${'a'.repeat(32)}: 1`), policy('none', 1, [], [['a'.repeat(32), '1']])); // extension name of 32 characters
  good(none('9a_b-c.d: 1'), policy('none', 1, [], [['9a_b-c.d', '1']])); // extension name with digits, "_", "-", "."
  good(enforce('Mode: testing'), policy('enforce', 86400, [mx('mx.example.com')], [['Mode', 'testing']])); // keys are case-sensitive: "Mode" is an extension
  good(enforce('MX: other.example'), policy('enforce', 86400, [mx('mx.example.com')], [['MX', 'other.example']])); // "MX" is an extension, not an mx
});

describe('parsePolicy: forgiven deviations, each reported (docs/decisions.md)', () => {
  // empty-line: nothing, or only SP/HTAB, between line breaks, anywhere
  good(`${enforce()}\n\n`, ENFORCE, dev('empty-line', 5)); // one empty line at the end
  good(`${enforce()}\r\n\r\n\r\n`, ENFORCE, dev('empty-line', 5, 6)); // CRLF empty lines at the end
  good(`${enforce()}\n\n\n`, ENFORCE, dev('empty-line', 5, 6)); // two empty lines at the end
  good(`\n${enforce()}`, ENFORCE, dev('empty-line', 1)); // an empty line at the start
  good(lf('version: STSv1', '', 'mode: enforce', 'max_age: 86400', 'mx: mx.example.com'), ENFORCE, dev('empty-line', 2)); // between fields
  good(lf('version: STSv1', '', 'mode: enforce', '', 'max_age: 86400', '', 'mx: mx.example.com', ''), ENFORCE, dev('empty-line', 2, 4, 6)); // between every field, no final LF
  good(`${enforce()}\n \t\n`, ENFORCE, dev('empty-line', 5)); // a line of only SP and HTAB
  good(`${enforce()}\n   `, ENFORCE, dev('empty-line', 5)); // only SP after the last terminator
  good(`${enforce()}\r\n \r\n`, ENFORCE, dev('empty-line', 5)); // SP then CRLF
  // mx-trailing-dot: one final "." after the Domain, as in a zone file
  good(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: mx.example.com.'), ENFORCE, dev('mx-trailing-dot', 4)); // plain host
  good(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: *.example.net.'), policy('enforce', 86400, [mx('example.net', true)]), dev('mx-trailing-dot', 4)); // wildcard
  good(enforce('mx: MX2.Example.COM.'), policy('enforce', 86400, [mx('mx.example.com'), mx('mx2.example.com')]), dev('mx-trailing-dot', 5)); // lower-cased too
  good(enforce('mx: mx2.example.com. '), policy('enforce', 86400, [mx('mx.example.com'), mx('mx2.example.com')]), dev('mx-trailing-dot', 5)); // trailing WSP after the dot
  // bom: U+FEFF before the first field
  good(`${BOM}${enforce()}`, ENFORCE, dev('bom', 1)); // a UTF-8 BOM
  // several at once, in line order
  good(`${BOM}version: STSv1\n\nmode: enforce\nmx: a.example.\nmax_age: 86400\n\n`, policy('enforce', 86400, [mx('a.example')]),
    [...dev('bom', 1), ...dev('empty-line', 2), ...dev('mx-trailing-dot', 4), ...dev('empty-line', 6)]); // all three kinds
});

describe('parsePolicy: RFC 8461 §3.2 rejects', () => {
  // where forgiving stops, and the mistakes real policies make that stay refused (test/corpus)
  bad('', /missing version/); // empty body: no field at all
  bad('\n', /missing version/); // only a terminator
  bad('\n\n \n', /missing version/); // only empty lines
  bad(`${BOM}${BOM}${enforce()}`, /line 1: field name/); // a BOM once only
  bad(lf('version: STSv1', `mode: none${BOM}`, 'max_age: 1'), /line 2: mode must be/); // a BOM inside a line is no BOM
  bad(`${enforce()}\n\u00a0\n`, /line 5: no ":"/); // NBSP is not WSP: not an empty line
  bad(`${enforce()}\n\v\n`, /line 5: no ":"/); // nor is a vertical tab
  bad(`${enforce()}\n\f`, /line 5: no ":"/); // nor a form feed
  bad(`${enforce()}\n\r`, /line 5: bare CR/); // a CR alone at the end is a bare CR, not an empty line
  bad(`${enforce()}\n \r \n`, /line 5: bare CR/); // a CR between spaces likewise
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: mx.example.com..'), /line 4: mx .*more than one trailing dot/); // two trailing dots
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: .'), /line 4: mx .*empty label/); // a dot alone
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: *.'), /line 4: mx .*empty name/); // "*." alone
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: localhost.'), /line 4: mx .*single label/); // a single label, dot or not
  bad(lf('version: STSv1', 'mode: enforced', 'max_age: 86400', 'mx: mx.example.com'), /line 2: mode must be/); // "enforced"
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: alt*.aspmx.l.google.com'), /line 4: mx .*leftmost label/); // "*" inside a label
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 86400', 'mx: Priority 5: mx.example.com'), /line 4: mx /); // MX priority pasted in
  bad(lf('  version: STSv1', '  mode: enforce', '  max_age: 86400', '  mx: mx.example.com'), /line 1: leading whitespace/); // indented fields
  bad('v=STSv1; id=20240101000000', /line 1: no ":"/); // the TXT record pasted instead
  // sts-policy-record: structure
  bad(none(' foo: bar'), /line 4: leading whitespace/); // leading SP
  bad(lf('version: STSv1', '\tmode: none', 'max_age: 1'), /line 2: leading whitespace/); // leading HTAB
  bad(none('foo bar'), /line 4: no ":"/); // line without ":"
  bad(none('foo : bar'), /line 4: field name/); // SP between name and ":"
  bad('version: STSv1\rmode: none\rmax_age: 1', /line 1: bare CR/); // bare CR as a terminator
  bad(`${none()}\r`, /line 3: bare CR/); // bare CR at the very end
  bad('version: STSv1\r\r\nmode: none\nmax_age: 1', /line 1: bare CR/); // CR CR LF
  bad(none('foo: a\u0000b'), /line 4: foo: not VCHAR/); // NUL in a value
  bad(none('\u0000foo: a'), /line 4: field name/); // NUL before a name
  bad('version: STSv1\fmode: none\nmax_age: 1', /line 1: version must be STSv1/); // form feed as a separator
  // required fields
  bad(lf('mode: none', 'max_age: 1'), /missing version/); // missing version
  bad(lf('version: STSv1', 'max_age: 1'), /missing mode/); // missing mode
  bad(lf('version: STSv1', 'mode: none'), /missing max_age/); // missing max_age
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 1'), /missing mx.*enforce/); // missing mx with mode enforce
  bad(lf('version: STSv1', 'mode: testing', 'max_age: 1'), /missing mx.*testing/); // missing mx with mode testing
  bad(lf('version: STSv1', 'Mode: enforce', 'max_age: 1', 'mx: mx.example.com'), /missing mode/); // "Mode: enforce" is no mode
  bad(lf('Version: STSv1', 'mode: none', 'max_age: 1'), /missing version/); // "Version: STSv1" is no version
  bad(lf('version: STSv1', 'mode: enforce', 'max_age: 1', 'MX: mx.example.com'), /missing mx/); // "MX:" is no mx
  // version
  bad(lf('version: STSv2', 'mode: none', 'max_age: 1'), /line 1: version must be STSv1/); // version STSv2
  bad(lf('version: STSv10', 'mode: none', 'max_age: 1'), /line 1: version must be STSv1/); // version STSv10
  bad(lf('version: stsv1', 'mode: none', 'max_age: 1'), /line 1: version must be STSv1/); // version is case-sensitive
  bad(none('version: STSv2'), /line 4: version must be STSv1/); // repeated version must still be STSv1
  bad(lf('version:', 'mode: none', 'max_age: 1'), /line 1: empty value for version/); // empty version
  // mode
  bad(lf('version: STSv1', 'mode: report', 'max_age: 1'), /line 2: mode must be/); // unknown mode
  bad(lf('version: STSv1', 'mode: Enforce', 'max_age: 1'), /line 2: mode must be/); // mode is case-sensitive
  bad(lf('version: STSv1', 'mode: enforce now', 'max_age: 1'), /line 2: mode must be/); // mode with extra text
  bad(enforce('mode: bogus'), /line 5: mode must be/); // repeated mode must still be valid
  bad(lf('version: STSv1', 'mode:  ', 'max_age: 1'), /line 2: empty value for mode/); // empty mode
  // max_age: 1*10(DIGIT), at most 31557600, read digit by digit
  bad(lf('version: STSv1', 'mode: none', 'max_age: 31557601'), /line 3: max_age must be/); // max_age 31557601
  bad(lf('version: STSv1', 'mode: none', 'max_age: 9999999999'), /line 3: max_age must be/); // max_age 9999999999 (10 digits, too large)
  bad(lf('version: STSv1', 'mode: none', 'max_age: 00000000001'), /line 3: max_age must be/); // max_age of 11 digits
  bad(lf('version: STSv1', 'mode: none', 'max_age: +1'), /line 3: max_age must be/); // max_age with "+"
  bad(lf('version: STSv1', 'mode: none', 'max_age: -1'), /line 3: max_age must be/); // max_age negative
  bad(lf('version: STSv1', 'mode: none', 'max_age: 1e3'), /line 3: max_age must be/); // max_age with exponent
  bad(lf('version: STSv1', 'mode: none', 'max_age: 0x10'), /line 3: max_age must be/); // max_age in hex
  bad(lf('version: STSv1', 'mode: none', 'max_age: 1.0'), /line 3: max_age must be/); // max_age with a fraction
  bad(lf('version: STSv1', 'mode: none', 'max_age: 86_400'), /line 3: max_age must be/); // max_age with "_"
  bad(lf('version: STSv1', 'mode: none', 'max_age: 1 0'), /line 3: max_age must be/); // max_age with inner space
  bad(lf('version: STSv1', 'mode: none', 'max_age: １'), /line 3: max_age must be/); // max_age in full-width digits
  bad(lf('version: STSv1', 'mode: none', 'max_age: ١'), /line 3: max_age must be/); // max_age in Arabic-Indic digits
  bad(lf('version: STSv1', 'mode: none', 'max_age: a'), /line 3: max_age must be/); // max_age not a number
  bad(lf('version: STSv1', 'mode: none', 'max_age: Infinity'), /line 3: max_age must be/); // max_age Infinity
  bad(lf('version: STSv1', 'mode: none', 'max_age:'), /line 3: empty value for max_age/); // empty max_age
  bad(enforce('max_age: x'), /line 5: max_age must be/); // repeated max_age must still be valid
  // mx: ["*."] Domain
  bad(enforce('mx:'), /line 5: empty value for mx/); // empty mx
  bad(enforce('mx: *.*.example.com'), /line 5: mx .*leftmost label/); // mx with "*.*."
  bad(enforce('mx: **.example.com'), /line 5: mx .*leftmost label/); // mx with "**."
  bad(enforce('mx: *mx.example.com'), /line 5: mx .*leftmost label/); // mx with "*" inside a label
  bad(enforce('mx: test.example-'), /line 5: mx .*inner hyphens/); // mx with a hyphen at a label end
  bad(enforce('mx: møx.example'), /line 5: mx .*inner hyphens/); // mx with a U-label
  bad(enforce('mx: a.example b.example'), /line 5: mx /); // mx with two values
  bad(enforce('mx: localhost'), /line 5: mx .*single label/); // mx of a single label
  // sts-policy-extension
  bad(none('ext:'), /line 4: empty value for ext/); // extension with an empty value
  bad(none(`${'a'.repeat(33)}: 1`), /line 4: field name/); // extension name of 33 characters
  bad(none('_bad: test'), /line 4: field name/); // extension name starting with "_"
  bad(none('a/b: test'), /line 4: field name/); // extension name with "/"
  bad(none('grüße: 1'), /line 4: field name/); // extension name with non-ASCII
  bad(none(': x'), /line 4: field name/); // empty field name
  bad(none('foo: a\tb'), /line 4: foo: not VCHAR/); // HTAB inside an extension value
  bad(none('foo: a\u007fb'), /line 4: foo: not VCHAR/); // DEL inside an extension value
  bad(none('foo: a\ud800b'), /line 4: foo: not VCHAR/); // lone surrogate in an extension value
});

describe('diagnosePolicy: every problem and every deviation, for `check`', () => {
  it('goes on past a broken line and reports each one in line order', () => {
    const text = lf('version: STSv1', 'mode: enforced', '', ' max_age: 86400', 'mx: mx.example.com.', 'mx: alt*.example.com', '', '');
    const d = diagnosePolicy(text);
    expect(d.policy).toBeUndefined();
    expect(d.problems).toEqual([
      expect.stringMatching(/^line 2: mode must be/),
      expect.stringMatching(/^line 4: leading whitespace/),
      expect.stringMatching(/^line 6: mx .*leftmost label/),
      expect.stringMatching(/^missing max_age/),
    ]);
    expect(d.deviations).toEqual([...dev('empty-line', 3), ...dev('mx-trailing-dot', 5), ...dev('empty-line', 7)]);
    expect(d.lineCount).toBe(7); // the final LF starts no line 8
  });

  it('does not call a field that is present but broken missing', () => {
    expect(diagnosePolicy(lf('version: STSv2', 'mode: bogus', 'max_age: x')).problems).toEqual([
      expect.stringMatching(/^line 1: version/),
      expect.stringMatching(/^line 2: mode/),
      expect.stringMatching(/^line 3: max_age/),
    ]);
  });

  it('parsePolicy throws the first problem diagnosePolicy finds', () => {
    const text = lf('version: STSv1', 'mode: x', 'max_age: y');
    expect(stsErrorOf(() => parsePolicy(text)).message).toBe(diagnosePolicy(text).problems[0]);
  });

  it('a valid policy has its policy, no problems, and a final terminator starts no line', () => {
    expect(diagnosePolicy(`${enforce()}\n`)).toEqual({ policy: ENFORCE, deviations: [], problems: [], lineCount: 4 });
  });
});

describe('diagnosePolicy: bounded reports', () => {
  it('lists at most POLICY_REPORT_LIMIT deviations of each rule, and every rule that occurs', () => {
    const text = `${'\n'.repeat(5 * POLICY_REPORT_LIMIT)}${enforce('mx: a.example.')}`;
    const d = diagnosePolicy(text);
    expect(d.policy).toBeDefined();
    expect(d.deviations.filter((x) => x.rule === 'empty-line')).toHaveLength(POLICY_REPORT_LIMIT);
    expect(d.deviations.at(-1)).toEqual({ rule: 'mx-trailing-dot', line: 5 * POLICY_REPORT_LIMIT + 5 });
  });

  it('lists at most POLICY_REPORT_LIMIT broken lines, then how many more', () => {
    const d = diagnosePolicy(enforce(...Array.from({ length: 3 * POLICY_REPORT_LIMIT }, () => 'bad line')));
    expect(d.problems).toHaveLength(POLICY_REPORT_LIMIT + 1);
    expect(d.problems.at(-1)).toBe(`and ${2 * POLICY_REPORT_LIMIT} more broken lines`);
  });
});
