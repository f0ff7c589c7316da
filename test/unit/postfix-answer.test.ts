/** What Postfix is told for each policy, per zone switches. */
import { describe, expect, it } from 'vitest';
import {
  compactMatches,
  NOTFOUND,
  permReply,
  policyStringValue,
  postfixAnswer,
  postfixReply,
  type AnswerOptions,
  type Shortening,
  type Verdict,
} from '../../src/answer/postfix.js';
import { parsePolicy } from '../../src/sts/policy.js';
import type { Mode, Policy } from '../../src/sts/types.js';
import { postfixMatchAllows, readPostfixPolicy } from './postfix-attributes.js';

const policy = (mode: Mode, mx: Array<[boolean, string]>): Policy => ({
  version: 'STSv1',
  mode,
  maxAge: 86400,
  mx: mx.map(([wildcard, domain]) => ({ wildcard, domain })),
  extensions: [],
});
const TEXT = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.mx.example.net\r\nmax_age: 86400\r\n';
const verdict = (mode: Mode, mx: Array<[boolean, string]> = [[false, 'mx1.example.com'], [true, 'mx.example.net']]): Verdict => ({
  kind: 'policy',
  domain: 'example.com',
  policy: policy(mode, mx),
  text: TEXT,
});
const PLAIN: AnswerOptions = { strictTesting: false, tlsrpt: false };
const STRICT: AnswerOptions = { strictTesting: true, tlsrpt: false };
const TLSRPT: AnswerOptions = { strictTesting: false, tlsrpt: true };

describe('postfixReply', () => {
  it.each<[string, Verdict, AnswerOptions, string]>([
    ['enforce: secure, mx patterns as match=, *.x as .x', verdict('enforce'), PLAIN,
      'OK secure match=mx1.example.com:.mx.example.net servername=hostname'],
    ['testing: not enforced (RFC 8461 §5)', verdict('testing'), PLAIN, NOTFOUND],
    ['testing in a strict_testing zone: enforced', verdict('testing'), STRICT,
      'OK secure match=mx1.example.com:.mx.example.net servername=hostname'],
    ['none: nothing to enforce', verdict('none', []), PLAIN, NOTFOUND],
    ['none in a strict_testing zone: still nothing', verdict('none', []), STRICT, NOTFOUND],
    ['no policy', { kind: 'none' }, PLAIN, NOTFOUND],
    ['no policy, TLSRPT zone: no attributes', { kind: 'none' }, TLSRPT, NOTFOUND],
    ['enforce with TLSRPT attributes (Postfix >= 3.10)', verdict('enforce'), TLSRPT,
      'OK secure match=mx1.example.com:.mx.example.net servername=hostname policy_type=sts policy_domain=example.com ' +
        'mx_host_pattern=mx1.example.com mx_host_pattern=*.mx.example.net { policy_string = version: STSv1 } ' +
        '{ policy_string = mode: enforce } { policy_string = mx: mx1.example.com } ' +
        '{ policy_string = mx: *.mx.example.net } { policy_string = max_age: 86400 }'],
  ])('%s', (_rule, v, options, want) => {
    expect(postfixReply(v, options)).toBe(want);
  });

  it('NOTFOUND carries the trailing space socketmap(5) expects', () => {
    expect(NOTFOUND).toBe('NOTFOUND ');
  });

  it('PERM reasons are one printable line', () => {
    expect(permReply('bad\r\nkey\x00here')).toBe('PERM bad key here');
  });
});

/** A verdict from a policy text, as the resolver would hand it over. */
const fromText = (text: string, domain = 'example.com'): Verdict => ({ kind: 'policy', domain, policy: parsePolicy(text), text });
const policyText = (mx: string[], extra: string[] = []): string =>
  ['version: STSv1', 'mode: enforce', ...mx.map((m) => `mx: ${m}`), 'max_age: 86400', ...extra].join('\r\n') + '\r\n';
const POSTFIX_LIMIT = 100_000; // Postfix's socketmap_max_reply default (postconf(5))

/** What Postfix reads out of a reply: its policy_string values, or its parse error. */
function policyStrings(reply: string): string[] {
  const read = readPostfixPolicy(reply.replace(/^OK /, ''));
  if ('error' in read) throw new Error(`Postfix would refuse ${JSON.stringify(reply)}: ${read.error}`);
  return read.attributes.filter(([name]) => name === 'policy_string').map(([, value]) => value);
}

describe('postfixReply with tlsrpt: every attribute is one Postfix 3.10+ can read back', () => {
  // [rule, extra policy lines, the policy_string values Postfix reads besides the four fixed lines]
  it.each<[string, string[], string[]]>([
    ['"{" in an extension value unbalances the braces: the line is left out', ['note: see {docs'], []],
    ['"}" would end the attribute early: left out', ['note: docs} here'], []],
    ['balanced braces are left out too: one rule, no counting', ['note: {x}'], []],
    ['"}{" would split one attribute in two: left out', ['note: a }{ b'], []],
    ['commas and spaces inside the braces are fine', ['note: a, b  c'], ['note: a, b  c']],
    ['"=" in the value is fine: Postfix splits at the first', ['note: a=b'], ['note: a=b']],
    ['UTF-8 in an extension value is passed on (RFC 8461 §3.2)', ['note: café'], ['note: café']],
    ['other lines stay when one is left out', ['note: {x', 'other: y'], ['other: y']],
  ])('%s', (_rule, extra, want) => {
    const mx = ['mx1.example.com', '*.mx.example.net'];
    const reply = postfixReply(fromText(policyText(mx, extra)), TLSRPT);
    expect(policyStrings(reply)).toEqual(['version: STSv1', 'mode: enforce', 'mx: mx1.example.com', 'mx: *.mx.example.net', 'max_age: 86400', ...want]);
    expect(reply).toMatch(/^OK secure match=mx1\.example\.com:\.mx\.example\.net servername=hostname policy_type=sts /);
  });

  // [line as in the policy text, the policy_string value or undefined, rule]
  it.each<[string, string | undefined, string]>([
    ['mode: enforce', 'mode: enforce', 'a plain line'],
    ['  mode: enforce \t', 'mode: enforce', 'blanks around it are what split_nameval strips anyway'],
    ['mode: enforce\r', 'mode: enforce', 'the CR of a CRLF line end'],
    ['', undefined, 'an empty line carries nothing'],
    [' \t ', undefined, 'nor one of blanks'],
    ['note: {', undefined, '"{"'],
    ['note: }', undefined, '"}"'],
    ['note: a\u0000b', undefined, 'NUL would cut Postfix\'s C string'],
    ['note: a\rb', undefined, 'a CR inside a line'],
    ['note: a\u007fb', undefined, 'DEL'],
    ['note: a\tb', 'note: a\tb', 'HTAB is white space Postfix normalises, not a break'],
  ])('policyStringValue(%j) -> %j (%s)', (line, want) => {
    expect(policyStringValue(line)).toBe(want);
  });
});

describe('postfixAnswer: never longer than socketmap_max_reply, enforce kept', () => {
  const many = (n: number, name: (i: number) => string) => Array.from({ length: n }, (_, i) => name(i));
  const mx5000 = many(5000, (i) => `mx${i}.example.net`);
  const secure5000 = `OK secure match=${mx5000.join(':')} servername=hostname`;
  const regional = [...many(2000, (i) => `mx${i}.eu.example.net`), ...many(2000, (i) => `mx${i}.us.example.net`)];
  const distinct = many(5000, (i) => `mx.domain${i}.example`);
  // [rule, mx lines, options, the reply (or a pattern of it), how it was shortened]
  it.each<[string, string[], AnswerOptions, string | RegExp, Shortening | undefined]>([
    ['5000 mx lines fit without TLSRPT: nothing to shorten', mx5000, PLAIN, secure5000, undefined],
    ['5000 mx lines with TLSRPT: the attributes go, the enforce directive stays whole', mx5000, TLSRPT, secure5000, 'tlsrpt-dropped'],
    ['a limit even the names exceed, one *. pattern covering them: the names go (same hosts)',
      ['*.example.net', ...mx5000], { ...PLAIN, maxReplyBytes: 1024 }, 'OK secure match=.example.net servername=hostname', 'match-compacted'],
    ['a limit the names exceed: their parent domain, still verified TLS',
      mx5000, { ...TLSRPT, maxReplyBytes: 1024 }, 'OK secure match=.example.net servername=hostname', 'match-widened'],
    ['the deepest parent domains that fit',
      regional, { ...PLAIN, maxReplyBytes: 1024 }, 'OK secure match=.eu.example.net:.us.example.net servername=hostname', 'match-widened'],
    ['an exact name no deeper than the cut stays exact',
      ['example.net', ...mx5000], { ...PLAIN, maxReplyBytes: 1024 }, 'OK secure match=example.net:.example.net servername=hostname', 'match-widened'],
    ['5000 unrelated domains under a tiny limit: TLS stays mandatory, never a top-level domain as match',
      distinct, { ...PLAIN, maxReplyBytes: 1024 }, 'OK encrypt', 'encrypt-only'],
  ])('%s', (_rule, mx, options, want, shortened) => {
    const verdict = fromText(policyText(mx));
    const got = postfixAnswer(verdict, options);
    if (typeof want === 'string') expect(got.reply).toBe(want);
    else expect(got.reply).toMatch(want);
    expect(got.shortened).toBe(shortened);
    expect(Buffer.byteLength(got.reply)).toBeLessThanOrEqual(options.maxReplyBytes ?? POSTFIX_LIMIT);
    // Whatever gave way, every MX host the policy allows is still let through: no deferral by our mistake.
    const matches = /match=(\S+)/.exec(got.reply)?.[1]?.split(':');
    if (matches) for (const m of mx) expect(postfixMatchAllows(matches, m.replace(/^\*\./, 'any.'))).toBe(true);
  });

  it('a reply exactly at the limit goes whole; one byte less and TLSRPT goes', () => {
    const verdict = fromText(policyText(['mx1.example.com']));
    const whole = postfixReply(verdict, TLSRPT);
    expect(postfixAnswer(verdict, { ...TLSRPT, maxReplyBytes: Buffer.byteLength(whole) })).toEqual({ reply: whole });
    expect(postfixAnswer(verdict, { ...TLSRPT, maxReplyBytes: Buffer.byteLength(whole) - 1 })).toEqual({
      reply: 'OK secure match=mx1.example.com servername=hostname',
      shortened: 'tlsrpt-dropped',
    });
  });

  it('counts bytes, not characters: UTF-8 in a policy line', () => {
    const verdict = fromText(policyText(['mx1.example.com'], [`note: ${'é'.repeat(200)}`]));
    const whole = postfixReply(verdict, TLSRPT);
    expect(whole.length).toBeLessThan(600);
    expect(Buffer.byteLength(whole)).toBeGreaterThan(600);
    expect(postfixAnswer(verdict, { ...TLSRPT, maxReplyBytes: 600 }).shortened).toBe('tlsrpt-dropped');
  });

  it('without maxReplyBytes the limit is Postfix\'s default', () => {
    const long = many(3000, (i) => `mx${i}.a-rather-long-name-for-a-mail-host-domain.example.net`);
    const got = postfixAnswer(fromText(policyText(long)), PLAIN);
    expect(Buffer.byteLength(got.reply)).toBeLessThanOrEqual(POSTFIX_LIMIT);
    expect(got.reply).toBe('OK secure match=.a-rather-long-name-for-a-mail-host-domain.example.net servername=hostname');
  });
});

describe('compactMatches: Postfix match= entries another entry covers', () => {
  it.each<[string[], string[], string]>([
    [['a.example', 'a.example'], ['a.example'], 'duplicates'],
    [['mx1.example.net', '.example.net'], ['.example.net'], 'a name below a parent entry, before or after it'],
    [['.a.example.net', '.example.net'], ['.example.net'], 'a deeper parent entry'],
    [['example.net', '.example.net'], ['example.net', '.example.net'], '.example.net does not cover example.net itself'],
    [['mx.example.net', '.xample.net'], ['mx.example.net', '.xample.net'], 'a suffix of a label is no parent domain'],
    [['b.example', 'a.example'], ['b.example', 'a.example'], 'order kept'],
  ])('%j -> %j (%s)', (matches, want) => {
    expect(compactMatches(matches)).toEqual(want);
  });
});
