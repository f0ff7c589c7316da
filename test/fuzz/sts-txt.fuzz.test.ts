/**
 * RFC 8461 §3.1 TXT record parser against the reference grammar: parseStsRecord accepts exactly the
 * records referenceTxt accepts, with the same id and extensions; selectStsRecord never throws anything but
 * StsError('txt'); neither ever throws anything else, whatever the bytes (node:dns hands TXT bytes over as
 * latin1 strings, so every byte value reaches the parser).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StsError } from '../../src/errors.js';
import { parseStsRecord, selectStsRecord } from '../../src/sts/txt.js';
import { mutated, params, RUNS, timeoutFor } from './fuzz.js';
import { referenceTxt } from './reference-grammar.js';

/** Short strings, and strings around the 32-character limit of sts-id and sts-ext-name. */
const sized = (chars: string) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.string({ unit: fc.constantFrom(...chars), minLength: 1, maxLength: 6 }) },
    { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...chars), minLength: 31, maxLength: 34 }) },
  );
const alnum = sized('abcXYZ019');
const extName = sized('aZ9_.-');
const extValue = fc.string({ unit: fc.constantFrom(...'a!~:<>"'), minLength: 1, maxLength: 6 });

/** sts-field pieces: mostly valid, some one step off the grammar. */
const field = fc.oneof(
  { weight: 6, arbitrary: alnum.map((id) => `id=${id}`) },
  { weight: 4, arbitrary: fc.tuple(extName, extValue).map(([n, v]) => `${n}=${v}`) },
  { weight: 1, arbitrary: fc.constantFrom('v=STSv1', 'v=STSv2', 'ID=abc', 'id=', '=x', 'id', 'x=1=2', 'id=a b', 'x=é', 'id=a-b') },
);
const delim = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(';', '; ', ' ;', '\t;\t', ' ; ', ';  ') },
  { weight: 1, arbitrary: fc.constantFrom(';;', ' ', '', ',', ';\n', '\0;') },
);
const version = fc.oneof(
  { weight: 8, arbitrary: fc.constant('v=STSv1') },
  { weight: 1, arbitrary: fc.constantFrom('v=STSv10', 'V=STSv1', ' v=STSv1', 'v=STSv', 'v=stsv1') },
);

/** Records built from the grammar's own pieces, some of them broken, some mutated or cut. */
const nearValid = mutated(
  fc
    .tuple(version, fc.array(fc.tuple(delim, field), { minLength: 0, maxLength: 4 }), fc.option(delim))
    .map(([v, fields, end]) => v + fields.map(([d, f]) => d + f).join('') + (end ?? '')),
  [';', '=', ' ', '\t', '\0', 'é', '\xff', 'a', '1', '-', '.', 'id=', 'v=STSv1'],
);

/** Any bytes, as node:dns gives them (latin1 string). */
const anyBytes = fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString('latin1'));
/** Valid prefix, then anything. */
const prefixed = fc.tuple(fc.constantFrom('v=STSv1;', 'v=STSv1; id=', 'v=STSv1; id=1;'), anyBytes).map(([a, b]) => a + b);

const seen = { accepted: 0, rejected: 0 };
let counting = false;

/** Plain comparisons (no expect() per input: 100k inputs must stay cheap); throws to fail the property. */
function agrees(text: string): void {
  const want = referenceTxt(text);
  let got: ReturnType<typeof parseStsRecord> | undefined;
  try {
    got = parseStsRecord(text);
  } catch (err) {
    // The only failure: an StsError of class txt. Anything else (TypeError, RangeError) is a bug.
    if (!(err instanceof StsError) || err.reason !== 'txt') throw err;
  }
  if (want === null && got !== undefined) throw new Error(`accepted what RFC 8461 §3.1 rejects: ${JSON.stringify(text)}`);
  if (want !== null && got === undefined) throw new Error(`rejected a valid record: ${JSON.stringify(text)}`);
  if (want !== null && JSON.stringify(got) !== JSON.stringify({ version: 'STSv1', ...want })) {
    throw new Error(`parsed ${JSON.stringify(text)} as ${JSON.stringify(got)}, the reference as ${JSON.stringify(want)}`);
  }
  if (counting) seen[want === null ? 'rejected' : 'accepted']++;
}

describe('fuzz: parseStsRecord against the RFC 8461 §3.1 reference grammar', () => {
  const runs = { near: Math.ceil(RUNS * 0.6), bytes: Math.ceil(RUNS * 0.2), prefixed: Math.ceil(RUNS * 0.2) };

  it(`near-valid records (${runs.near} inputs): accepts <=> the reference accepts`, { timeout: timeoutFor(runs.near, 30) }, () => {
    counting = true;
    fc.assert(fc.property(nearValid, (text) => agrees(text)), params(runs.near));
    counting = false;
  });

  it(`random bytes (${runs.bytes} inputs)`, { timeout: timeoutFor(runs.bytes, 30) }, () => {
    fc.assert(fc.property(anyBytes, (text) => agrees(text)), params(runs.bytes));
  });

  it(`a valid start followed by random bytes (${runs.prefixed} inputs)`, { timeout: timeoutFor(runs.prefixed, 30) }, () => {
    fc.assert(fc.property(prefixed, (text) => agrees(text)), params(runs.prefixed));
  });

  it('the near-valid inputs exercise both sides of the grammar', () => {
    // Generated inputs that are trivially rejected would prove little: at least 10% must be valid records.
    expect(seen.accepted).toBeGreaterThan((seen.accepted + seen.rejected) / 10);
    expect(seen.rejected).toBeGreaterThan((seen.accepted + seen.rejected) / 10);
  });

  it('a valid record cut at every byte', () => {
    const record = 'v=STSv1; id=20160831085700Z; ext.a-b_c=!x~; id=second;';
    for (let i = 0; i <= record.length; i++) agrees(record.slice(0, i));
  });

  it('selectStsRecord over random RRsets: a record, none, or StsError(txt), never anything else', { timeout: 60_000 }, () => {
    const rrset = fc.array(fc.array(fc.oneof(nearValid, anyBytes), { minLength: 1, maxLength: 3 }), { maxLength: 3 });
    fc.assert(
      fc.property(rrset, (records) => {
        try {
          const r = selectStsRecord(records);
          if (r.kind === 'record') expect(referenceTxt(records.map((s) => s.join('')).find((t) => /^v=STSv1[; \t]/.test(t))!)).not.toBeNull();
        } catch (err) {
          expect(err).toBeInstanceOf(StsError);
          expect((err as StsError).reason).toBe('txt');
        }
      }),
      params(Math.ceil(RUNS / 10)),
    );
  });
});
