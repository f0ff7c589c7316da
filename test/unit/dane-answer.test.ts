/**
 * DANE first (RFC 8461 §2): what Postfix and Exim are told for every DANE state and MTA-STS policy.
 * One row per case: DANE state, MTA-STS policy, expected reply, the rule.
 */
import { describe, expect, it } from 'vitest';
import { eximDaneValue, eximPolicyReply } from '../../src/answer/exim.js';
import {
  DANE_ONLY_REPLY,
  DANE_REPLY,
  DANE_TEMP_REASON,
  NOTFOUND,
  postfixDaneAnswer,
  tempReply,
  type AnswerOptions,
  type DaneVerdict,
  type Verdict,
} from '../../src/answer/postfix.js';
import { daneVerdictOf } from '../../src/answer/verdict.js';
import type { Mode } from '../../src/sts/types.js';

const TEXT = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 86400\r\n';
const sts = (mode: Mode): Verdict => ({
  kind: 'policy',
  domain: 'example.com',
  policy: { version: 'STSv1', mode, maxAge: 86400, mx: mode === 'none' ? [] : [{ wildcard: false, domain: 'mx1.example.com' }], extensions: [] },
  text: TEXT,
});
const NO_POLICY: Verdict = { kind: 'none' };
const SECURE = 'OK secure match=mx1.example.com servername=hostname';
const TEMP = tempReply(DANE_TEMP_REASON);
const PLAIN: AnswerOptions = { strictTesting: false, tlsrpt: false };
const TLSRPT: AnswerOptions = { strictTesting: false, tlsrpt: true };

describe('postfixDaneAnswer', () => {
  const table: Array<[dane: DaneVerdict, policy: string, verdict: Verdict, reply: string, rule: string]> = [
    ['dane-only', 'enforce', sts('enforce'), DANE_ONLY_REPLY, 'every MX DANE-usable: DANE wins over MTA-STS'],
    ['dane-only', 'none', NO_POLICY, DANE_ONLY_REPLY, 'every MX DANE-usable, no MTA-STS: DANE or no delivery'],
    ['dane', 'enforce', sts('enforce'), DANE_REPLY, 'some MX with TLSA: Postfix does DANE where it applies, not MTA-STS'],
    ['dane', 'testing', sts('testing'), DANE_REPLY, 'some MX with TLSA, testing policy'],
    ['dane', 'none', NO_POLICY, DANE_REPLY, 'some MX with TLSA, no MTA-STS'],
    ['none', 'enforce', sts('enforce'), SECURE, 'DANE proven absent: the MTA-STS answer as today'],
    ['none', 'testing', sts('testing'), NOTFOUND, 'DANE proven absent, testing policy: not enforced (RFC 8461 §5)'],
    ['none', 'none', NO_POLICY, NOTFOUND, 'neither'],
    ['null-mx', 'enforce', sts('enforce'), SECURE, 'null MX: the MTA-STS answer (Postfix bounces on the null MX itself)'],
    ['null-mx', 'none', NO_POLICY, NOTFOUND, 'null MX, no policy'],
    ['temp', 'enforce', sts('enforce'), TEMP, 'DANE lookup failed: an enforce answer would override DANE: defer'],
    ['temp', 'testing', sts('testing'), NOTFOUND, 'DANE lookup failed, nothing enforced: Postfix keeps its own level and DANE'],
    ['temp', 'none', NO_POLICY, NOTFOUND, 'DANE lookup failed, no policy: Postfix keeps its own level and DANE'],
    ['off', 'enforce', sts('enforce'), SECURE, 'zone dane: off (or no validating resolver): MTA-STS as before'],
    ['off', 'none', NO_POLICY, NOTFOUND, 'zone dane: off, no policy'],
  ];
  it.each(table)('DANE %s, MTA-STS %s -> %j: %s', (dane, _policy, verdict, reply) => {
    expect(postfixDaneAnswer(dane, verdict, PLAIN).reply).toBe(reply);
  });

  it('DANE answers carry no TLSRPT attributes (Postfix reports DANE policies itself)', () => {
    expect(postfixDaneAnswer('dane-only', sts('enforce'), TLSRPT).reply).toBe(DANE_ONLY_REPLY);
    expect(postfixDaneAnswer('dane', sts('enforce'), TLSRPT).reply).toBe(DANE_REPLY);
    expect(postfixDaneAnswer('none', sts('enforce'), TLSRPT).reply).toMatch(/^OK secure .* policy_type=sts /);
  });

  it('the TEMP reason is one printable line', () => {
    expect(TEMP).toMatch(/^TEMP [\x20-\x7e]+$/);
  });

  it('daneVerdictOf: no result is off', () => {
    expect(daneVerdictOf(undefined)).toBe('off');
    expect(daneVerdictOf({ domain: 'example.com', state: 'dane', why: 'some-usable', hosts: [], expiresAt: 0 })).toBe('dane');
  });
});

describe('Exim policy reply: dane=yes|no', () => {
  const table: Array<[dane: Exclude<DaneVerdict, 'off'>, value: 'yes' | 'no', rule: string]> = [
    ['dane-only', 'yes', 'every MX DANE-usable'],
    ['dane', 'yes', 'some MX with TLSA'],
    ['temp', 'yes', 'DANE not ruled out: Exim own DANE meets the failure and defers'],
    ['none', 'no', 'DANE proven absent'],
    ['null-mx', 'no', 'the domain takes no mail'],
  ];
  it.each(table)('%s -> dane=%s: %s', (dane, value) => {
    expect(eximDaneValue(dane)).toBe(value);
    expect(eximPolicyReply({ kind: 'none', why: 'no-record' }, dane)).toBe(`mode=none reason=no-record dane=${value}\n`);
  });

  it('without DANE (off) the reply is as before', () => {
    expect(eximPolicyReply({ kind: 'none', why: 'no-record' })).toBe('mode=none reason=no-record\n');
    const enforce = sts('enforce') as Extract<Verdict, { kind: 'policy' }>;
    expect(eximPolicyReply({ kind: 'policy', id: '1', policy: enforce.policy }, 'dane')).toBe(
      'mode=enforce mx=mx1.example.com id=1 max_age=86400 dane=yes\n',
    );
  });
});
