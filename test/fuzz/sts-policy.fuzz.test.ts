/**
 * RFC 8461 §3.2 policy parser against the reference grammar: readPolicy accepts exactly the bodies
 * referencePolicy accepts (the RFC plus the deviations docs/decisions.md forgives), with the same mode,
 * max_age, mx list and deviations, and never throws anything but StsError('parse'). Bodies arrive as bytes (the fetcher decodes UTF-8 strictly), so random bytes go
 * through the same fatal decoder first.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StsError } from '../../src/errors.js';
import { readPolicy } from '../../src/sts/policy.js';
import type { ParsedPolicy } from '../../src/sts/types.js';
import { mutated, params, RUNS, timeoutFor } from './fuzz.js';
import { referencePolicy } from './reference-grammar.js';

const seen = { accepted: 0, rejected: 0, forgiven: 0 };
let counting = false;

function agrees(text: string): void {
  const want = referencePolicy(text);
  let got: ParsedPolicy | undefined;
  try {
    got = readPolicy(text);
  } catch (err) {
    if (!(err instanceof StsError) || err.reason !== 'parse') throw err;
  }
  if (want === null && got !== undefined) throw new Error(`accepted what RFC 8461 §3.2 rejects: ${JSON.stringify(text)}`);
  if (want !== null && got === undefined) throw new Error(`rejected a valid policy: ${JSON.stringify(text)}`);
  if (want !== null && got !== undefined) {
    const { policy, deviations } = got;
    const mine = { mode: policy.mode, maxAge: policy.maxAge, mx: policy.mx.map((p) => (p.wildcard ? `*.${p.domain}` : p.domain)), deviations };
    if (JSON.stringify(mine) !== JSON.stringify(want)) {
      throw new Error(`parsed ${JSON.stringify(text)} as ${JSON.stringify(mine)}, the reference as ${JSON.stringify(want)}`);
    }
  }
  if (counting) seen[want === null ? 'rejected' : 'accepted']++;
  if (counting && want !== null && want.deviations.length > 0) seen.forgiven++;
}

/** Pieces of the grammar: `good` ones always fit their rule, `any` ones sometimes do not. */
const goodLabel = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: fc.constantFrom(...'abxyzAB019'), minLength: 1, maxLength: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom('a-b', 'xn--bcher-kva', '9', 'a'.repeat(63)) },
);
const anyLabel = fc.oneof(
  { weight: 4, arbitrary: goodLabel },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(64), '*', '', 'é', 'a_b', '-a', 'a-', 'A--') },
);
const hostname = (l: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.array(l, { minLength: 2, maxLength: 4 }).map((x) => x.join('.')) },
    { weight: 1, arbitrary: l },
    // Around the 253-octet total (RFC 1035 §2.3.4).
    { weight: 1, arbitrary: fc.integer({ min: 250, max: 255 }).map((n) => `${'a'.repeat(61)}.`.repeat(5).slice(0, n - 2) + '.b') },
  );
const goodWs = fc.constantFrom('', '', ' ', '\t', '  ', ' \t');
const goodMaxAge = fc.oneof(fc.nat({ max: 31_557_600 }).map(String), fc.constantFrom('0', '31557600', '0000086400'));
const anyMaxAge = fc.oneof(
  goodMaxAge,
  fc.constantFrom('31557601', '00000000000', '9999999999', '99999999999', '-1', '1e3', '８', '1 2', '0x10', ''),
);
const goodValue = fc.string({ unit: fc.constantFrom(...'a:!~é日👋'), minLength: 1, maxLength: 8 });
const anyValue = fc.string({ unit: fc.constantFrom(...'a:! ~é日\t👋\x7f'), minLength: 0, maxLength: 8 });
const goodExtName = fc.oneof(fc.string({ unit: fc.constantFrom(...'aZ9_.-'), minLength: 1, maxLength: 5 }).filter((n) => /^[a-zA-Z0-9]/.test(n) && !['mx', 'mode', 'version', 'max_age'].includes(n)), fc.constant('x'.repeat(32)));
const anyExtName = fc.oneof(goodExtName, fc.constantFrom('x'.repeat(33), 'Mode', 'MX', '_x', ' mx', 'mx ', '', 'a b'));

function lines(o: { ws: fc.Arbitrary<string>; version: fc.Arbitrary<string>; mode: fc.Arbitrary<string>; maxAge: fc.Arbitrary<string>;
  star: fc.Arbitrary<string>; host: fc.Arbitrary<string>; dot: fc.Arbitrary<string>; extName: fc.Arbitrary<string>; value: fc.Arbitrary<string> }) {
  return fc.oneof(
    { weight: 1, arbitrary: fc.tuple(o.ws, o.version).map(([w, v]) => `version:${w}${v}`) },
    { weight: 1, arbitrary: fc.tuple(o.ws, o.mode).map(([w, v]) => `mode:${w}${v}`) },
    { weight: 1, arbitrary: fc.tuple(o.ws, o.maxAge).map(([w, v]) => `max_age:${w}${v}`) },
    { weight: 4, arbitrary: fc.tuple(o.ws, o.star, o.host, o.dot).map(([w, star, h, dot]) => `mx:${w}${star}${h}${dot}`) },
    { weight: 2, arbitrary: fc.tuple(o.extName, o.ws, o.value).map(([n, w, v]) => `${n}:${w}${v}`) },
  );
}
const goodLine = lines({
  ws: goodWs, version: fc.constant('STSv1'), mode: fc.constantFrom('enforce', 'testing', 'none'), maxAge: goodMaxAge,
  star: fc.constantFrom('', '*.'), host: hostname(goodLabel), dot: fc.constantFrom('', '', '', '.'), extName: goodExtName, value: goodValue,
});
const anyLine = lines({
  ws: fc.constantFrom('', ' ', '\t', '\v', '\u00a0'), version: fc.constantFrom('STSv1', 'STSv2', 'stsv1', 'STSv1 x'),
  mode: fc.constantFrom('enforce', 'testing', 'none', 'Enforce', 'strict', ''), maxAge: anyMaxAge,
  star: fc.constantFrom('', '*.', '*', '**.', '.'), host: hostname(anyLabel), dot: fc.constantFrom('', '', '.', '..', '. ', '.\t'), extName: anyExtName, value: anyValue,
});
const goodTerm = fc.constantFrom('\n', '\r\n');
/** Terms with forgiven empty lines (nothing or only WSP) in them, and broken ones. */
const anyTerm = fc.constantFrom('\n', '\r\n', '\r', '', '\n\n', '\n\r', '\n ', '\r\n\r\n', '\n \t\n', '\n\u00a0\n', '\n\v\n', '\n\r\r\n');

function policyText(line: fc.Arbitrary<string>, term: fc.Arbitrary<string>, trailing: fc.Arbitrary<string>, required: number) {
  return fc
    .tuple(
      fc.shuffledSubarray(['version: STSv1', 'mode: enforce', 'max_age: 86400'], { minLength: required }),
      fc.array(fc.tuple(line, trailing), { maxLength: 5 }),
      fc.array(term, { minLength: 8, maxLength: 8 }),
      fc.option(term),
      fc.nat(),
      fc.constantFrom('', '', '', '', '\ufeff', '\n', '\ufeff\ufeff', ' \n'),
    )
    .map(([required, extra, terms, end, seed, start]) => {
      const all = [...required, ...extra.map(([l, w]) => l + w)];
      // Rotate by a generated amount so the generated lines are not always last.
      const at = seed % all.length;
      const ordered = [...all.slice(at), ...all.slice(0, at)];
      return start + ordered.map((l, i) => (i === 0 ? l : terms[i % terms.length]! + l)).join('') + (end ?? '');
    });
}

/** Policies from the grammar's pieces (all fitting, or some not), then a few edits on some of them. */
const nearValid = mutated(
  fc.oneof(
    policyText(goodLine, goodTerm, goodWs, 3),
    policyText(fc.oneof(goodLine, anyLine), fc.oneof({ weight: 4, arbitrary: goodTerm }, { weight: 1, arbitrary: anyTerm }), goodWs, 2),
  ),
  ['\n', '\r', ' ', '\t', ':', '\0', 'é', '\ud800', 'a', '.', '*', '-', '1', 'mx: a.b\n', '\ufeff', '\n\n'],
);

// As the fetcher decodes: strict, and a BOM is kept for the parser (src/net/policy-fetch.ts).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

describe('fuzz: parsePolicy against the RFC 8461 §3.2 reference grammar', () => {
  const runs = { near: Math.ceil(RUNS * 0.7), bytes: Math.ceil(RUNS * 0.2), cut: Math.ceil(RUNS * 0.1) };

  it(`near-valid policies (${runs.near} inputs): accepts <=> the reference accepts`, { timeout: timeoutFor(runs.near, 80) }, () => {
    counting = true;
    fc.assert(fc.property(nearValid, (text) => agrees(text)), params(runs.near));
    counting = false;
  });

  it('the near-valid inputs exercise both sides of the grammar', () => {
    expect(seen.accepted).toBeGreaterThan((seen.accepted + seen.rejected) / 10);
    expect(seen.rejected).toBeGreaterThan((seen.accepted + seen.rejected) / 10);
    // Accepted policies with forgiven deviations (empty lines, trailing dots, a BOM) are common too.
    expect(seen.forgiven).toBeGreaterThan(seen.accepted / 20);
  });

  it(`random bytes through the strict UTF-8 decoder (${runs.bytes} inputs)`, { timeout: timeoutFor(runs.bytes, 50) }, () => {
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 120 }),
      fc.tuple(fc.constantFrom('version: STSv1\nmode: none\nmax_age: 1\n', 'version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\nx: ', '\ufeffversion: STSv1\nmode: none\nmax_age: 1\n'), fc.uint8Array({ maxLength: 20 }))
        .map(([t, b]) => new Uint8Array([...Buffer.from(t), ...b])),
    );
    fc.assert(
      fc.property(body, (bytes) => {
        let text: string;
        try {
          text = utf8.decode(bytes);
        } catch {
          return; // the fetcher refuses invalid UTF-8 before parsing (StsError parse)
        }
        agrees(text);
      }),
      params(runs.bytes),
    );
  });

  it(`a valid policy cut at every byte, and mutated then cut anywhere (${runs.cut} inputs)`, { timeout: timeoutFor(runs.cut, 80) }, () => {
    const valid = 'version: STSv1\r\nmode: enforce\nmx: mail.example.com\nmx: *.example.net  \nmax_age: 604800\next: ünï code 👋\n';
    for (let i = 0; i <= valid.length; i++) agrees(valid.slice(0, i));
    fc.assert(
      fc.property(mutated(fc.constant(valid), ['\n', '\r', ' ', '\t', ':', 'x']), fc.nat(), (text, cut) => {
        agrees(text.slice(0, cut % (text.length + 1)));
      }),
      params(runs.cut),
    );
  });
});
