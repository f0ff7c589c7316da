/** What Postfix is told for each policy, per zone switches. */
import { describe, expect, it } from 'vitest';
import { NOTFOUND, permReply, postfixReply, type AnswerOptions, type Verdict } from '../../src/answer/postfix.js';
import type { Mode, Policy } from '../../src/sts/types.js';

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
