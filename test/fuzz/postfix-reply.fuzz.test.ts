/**
 * The Postfix reply for any valid policy (random mx patterns, up to thousands; extension lines holding
 * braces, commas, "=", UTF-8, tabs after the colon; CRLF or LF; a BOM) under any reply limit from the
 * config's least (1024) to Postfix's default: Postfix 3.10+ reads every attribute back (the reference of
 * its parser in test/unit/postfix-attributes.ts), the reply is never longer than the limit, it is an
 * enforce directive whose match= still lets every MX host of the policy through (or `OK encrypt`), and
 * with TLSRPT attributes it names every pattern and quotes every kept line unchanged (issue 13).
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { postfixAnswer } from '../../src/answer/postfix.js';
import { parsePolicy } from '../../src/sts/policy.js';
import { readPostfixPolicy } from '../unit/postfix-attributes.js';
import { params, RUNS, timeoutFor } from './fuzz.js';

const label = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: fc.constantFrom(...'abcxyz0189'), minLength: 1, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('mx', 'mail', 'xn--bcher-kva', 'a-b', 'x'.repeat(63)) },
);
const domain = fc.array(label, { minLength: 2, maxLength: 4 }).map((l) => l.join('.')).filter((d) => !/^[0-9]+$/.test(d.slice(d.lastIndexOf('.') + 1)));
const pattern = fc.tuple(fc.boolean(), domain).map(([wild, d]) => (wild ? `*.${d}` : d));
const fewMx = fc.array(pattern, { minLength: 1, maxLength: 8 });
// Thousands of lines: more than a reply can hold with TLSRPT, sometimes more than without.
const manyMx = fc
  .tuple(fc.integer({ min: 1000, max: 6000 }), fc.array(domain, { minLength: 1, maxLength: 30 }), fc.array(pattern, { maxLength: 3 }))
  .map(([n, ds, extra]) => [...extra, ...Array.from({ length: n }, (_, i) => `mx${i}.${ds[i % ds.length]}`)]);
const vchar = fc.constantFrom(...'ab{}[]=,;:#"\\\'é日', '\u{1F600}');
const extValue = fc.array(fc.oneof(vchar, fc.constant(' ')), { minLength: 1, maxLength: 20 }).map((a) => a.join('').trim()).filter((v) => v !== '');
const extLine = fc.tuple(fc.constantFrom('note', 'x-a', 'b.c'), fc.constantFrom(': ', ':', ':\t', ':  '), extValue).map(([n, sep, v]) => `${n}${sep}${v}`);
const policyText = (mxLines: fc.Arbitrary<string[]>) => fc
  .tuple(mxLines, fc.array(extLine, { maxLength: 4 }), fc.constantFrom('\n', '\r\n'), fc.boolean(), fc.boolean())
  .map(([mx, ext, eol, bom, blank]) => {
    const lines = ['version: STSv1', 'mode: enforce', ...mx.map((m) => `mx: ${m}`), 'max_age: 86400', ...ext];
    if (blank) lines.splice(2, 0, ' \t');
    return (bom ? '\ufeff' : '') + lines.join(eol) + eol;
  });
const limit = fc.oneof(fc.constant(100_000), fc.integer({ min: 1024, max: 100_000 }));

function check(text: string, maxReplyBytes: number, tlsrpt: boolean): void {
  const policy = parsePolicy(text);
  const { reply } = postfixAnswer({ kind: 'policy', domain: 'example.com', policy, text }, { strictTesting: false, tlsrpt, maxReplyBytes });
  if (Buffer.byteLength(reply) > maxReplyBytes) throw new Error(`${Buffer.byteLength(reply)} bytes over the limit ${maxReplyBytes}`);
  if (!reply.startsWith('OK ')) throw new Error(`an enforce policy answered ${JSON.stringify(reply.slice(0, 80))}`);
  const read = readPostfixPolicy(reply.slice(3));
  if ('error' in read) throw new Error(`Postfix would refuse the reply: ${read.error}`);
  if (reply === 'OK encrypt') return;
  if (read.level !== 'secure') throw new Error(`level ${read.level}`);
  const attribute = (name: string) => read.attributes.filter(([n]) => n === name).map(([, v]) => v);
  const matches = new Set(attribute('match')[0]!.split(':'));
  for (const p of policy.mx) {
    const host = p.wildcard ? `any.${p.domain}` : p.domain;
    if (!allows(matches, host)) throw new Error(`match= ${[...matches].slice(0, 5).join(':')}... refuses ${host}`);
  }
  if (attribute('policy_type').length === 0) return;
  const patterns = attribute('mx_host_pattern');
  if (patterns.join() !== policy.mx.map((p) => (p.wildcard ? `*.${p.domain}` : p.domain)).join()) throw new Error('mx_host_pattern differs from the policy');
  const lines = text.replace(/^\ufeff/, '').split(/\r?\n/);
  // Postfix normalises white space inside a value; what it reads is a line of the policy, in order.
  const normal = (s: string) => s.replace(/[ \t]/g, ' ').trim();
  let at = 0;
  for (const value of attribute('policy_string')) {
    while (at < lines.length && normal(lines[at]!) !== value) at++;
    if (at === lines.length) throw new Error(`policy_string ${JSON.stringify(value)} is no line of the policy, in order`);
    at++;
  }
}

/** Postfix's match= (postconf(5) smtp_tls_secure_cert_match): the name itself, or `.parent` of it. */
function allows(matches: Set<string>, host: string): boolean {
  if (matches.has(host)) return true;
  for (let at = host.indexOf('.'); at >= 0; at = host.indexOf('.', at + 1)) if (matches.has(host.slice(at))) return true;
  return false;
}

describe('fuzz: the Postfix reply for any policy', () => {
  const runs = { few: Math.ceil(RUNS / 20), many: Math.max(20, Math.ceil(RUNS / 2000)) };
  it(`Postfix reads it back, it fits the limit and lets every MX host through (${runs.few} policies)`, { timeout: timeoutFor(runs.few, 500) }, () => {
    fc.assert(fc.property(policyText(fewMx), limit, fc.boolean(), check), params(runs.few));
  });

  it(`the same with thousands of mx lines (${runs.many} policies)`, { timeout: timeoutFor(runs.many, 200_000) }, () => {
    fc.assert(fc.property(policyText(manyMx), limit, fc.boolean(), check), params(runs.many));
  });
});
