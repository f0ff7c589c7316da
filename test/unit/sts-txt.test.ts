import { describe, expect, it } from 'vitest';
import { stsErrorOf } from './sts-error-of.js';
import { parseStsRecord, selectStsRecord } from '../../src/sts/txt.js';


const ID32 = 'a'.repeat(32);
const NAME32 = 'x'.repeat(32);

describe('parseStsRecord: RFC 8461 §3.1 sts-text-record', () => {
  // [record, id, extensions]
  const good: Array<[string, string, Array<[string, string]>]> = [
    ['v=STSv1; id=20160831085700Z;', '20160831085700Z', []], // the RFC's own example
    ['v=STSv1; id=20160831085700Z', '20160831085700Z', []], // trailing delimiter is optional
    ['v=STSv1;id=a', 'a', []], // no WSP around ";"
    ['v=STSv1 ; id=a', 'a', []], // sts-field-delim = *WSP ";" *WSP
    ['v=STSv1\t;\tid=a\t;\t', 'a', []], // HTAB is WSP too
    ['v=STSv1;  \t id=a  ;  ', 'a', []], // several WSP, trailing delimiter with WSP
    [`v=STSv1; id=${ID32}`, ID32, []], // id of 32 characters
    ['v=STSv1; id=AbC123', 'AbC123', []], // ALPHA / DIGIT, case kept
    ['v=STSv1; id=a; ext=1', 'a', [['ext', '1']]], // extension after id
    ['v=STSv1; ext=1; id=a', 'a', [['ext', '1']]], // extension before id
    ['v=STSv1; id=a; a.b-c_d=x', 'a', [['a.b-c_d', 'x']]], // ext-name may hold "." "-" "_"
    [`v=STSv1; id=a; ${NAME32}=1`, 'a', [[NAME32, '1']]], // ext-name of 32 characters
    ['v=STSv1; id=a; 9x=1', 'a', [['9x', '1']]], // ext-name may start with a digit
    ['v=STSv1; id=a; e=!"#$%&\'()*+,-./:<>?@[\\]^_`{|}~', 'a', [['e', '!"#$%&\'()*+,-./:<>?@[\\]^_`{|}~']]], // every allowed punctuation
    ['v=STSv1; id=a; ID=b', 'a', [['ID', 'b']]], // "ID" is not "id" (%s): an extension
    ['v=STSv1; id=first; id=second', 'first', []], // repeated id: the first wins
    ['v=STSv1; id=a; v=STSv1', 'a', []], // repeated version: ignored
    ['v=STSv1; id=a; x=1; x=2', 'a', [['x', '1'], ['x', '2']]], // extensions kept in order, as given
  ];
  it.each(good)('accepts %j', (record, id, extensions) => {
    expect(parseStsRecord(record)).toEqual({ version: 'STSv1', id, extensions });
  });

  // [record, rule broken (matched against the message)]
  const bad: Array<[string, RegExp]> = [
    ['', /begin with v=STSv1/], // empty
    ['id=a; v=STSv1', /begin with v=STSv1/], // version must come first
    [' v=STSv1; id=a', /begin with v=STSv1/], // no leading WSP
    ['V=STSv1; id=a', /begin with v=STSv1/], // %s: case-sensitive
    ['v=stsv1; id=a', /begin with v=STSv1/], // %s: case-sensitive
    ['v=STSv2; id=a', /begin with v=STSv1/], // other version
    ['v=STSv10; id=a', /offset 7/], // version token runs on
    ['v=STSv1', /missing id/], // no fields
    ['v=STSv1;', /missing id/], // no fields, only a delimiter
    ['v=STSv1; ext=1', /missing id/], // id is required
    ['v=STSv1; ID=a', /missing id/], // "ID" is an extension, id still missing
    ['v=STSv1; id=', /sts-id/], // empty id
    [`v=STSv1; id=${ID32}b`, /sts-id/], // 33-character id
    ['v=STSv1; id=test-123', /sts-id/], // "-" not in id
    ['v=STSv1; id=a_b', /sts-id/], // "_" not in id
    ['v=STSv1; id=a.b', /sts-id/], // "." not in id
    ['v=STSv1; id=ä', /sts-id/], // non-ASCII id
    ['v=STSv1; id=a b', /offset 13/], // SP inside a value
    ['v=STSv1; id=a; id=b-c', /sts-id/], // a repeated id must still be well-formed
    ['v=STSv1; id=a; v=STSv2', /sts-version/], // a repeated version must be STSv1
    ['v=STSv1; id=a;;', /sts-field/], // empty field between delimiters
    ['v=STSv1;; id=a', /sts-field/], // empty field between delimiters
    ['v=STSv1; id=a ', /offset 13/], // trailing WSP without ";"
    ['v=STSv1; id=a; more=', /sts-ext-value/], // empty extension value
    ['v=STSv1; id=a; test==', /sts-ext-value/], // "=" is not in sts-ext-value
    ['v=STSv1; id=a; t=a=b', /offset/], // "=" inside a value
    [`v=STSv1; id=a; ${NAME32}y=1`, /sts-ext-name/], // 33-character ext-name
    ['v=STSv1; id=a; _x=1', /sts-ext-name/], // ext-name starts with ALPHA / DIGIT
    ['v=STSv1; id=a; -x=1', /sts-ext-name/], // ext-name starts with ALPHA / DIGIT
    ['v=STSv1; id=a; =1', /sts-ext-name/], // empty ext-name
    ['v=STSv1; id=a; 1%=a', /sts-field/], // "%" not in ext-name
    ['v=STSv1; id=a; x', /sts-field/], // field without "="
    ['v=STSv1; id=a; x=\u00e9', /sts-ext-value/], // non-ASCII value
    ['v=STSv1; id=a; x=a\u0000', /offset/], // NUL
    ['v=STSv1; id=a\r\n', /offset/], // line terminator
  ];
  it.each(bad)('rejects %j (%s)', (record, rule) => {
    const err = stsErrorOf(() => parseStsRecord(record));
    expect(err.reason).toBe('txt');
    expect(err.message).toMatch(rule);
  });
});

describe('selectStsRecord: RFC 8461 §3.1 record selection', () => {
  const record = (id: string, extensions: Array<[string, string]> = []) => ({
    kind: 'record',
    record: { version: 'STSv1', id, extensions },
  });

  // [what the rule says, TXT RRset as resolveTxt returns it, result]
  const good: Array<[string, string[][], unknown]> = [
    ['no TXT records', [], { kind: 'none' }],
    ['only unrelated records', [['v=spf1 -all'], ['google-site-verification=x']], { kind: 'none' }],
    ['one STSv1 record', [['v=STSv1; id=a']], record('a')],
    ['unrelated records are discarded', [['v=spf1 -all'], ['v=STSv1; id=a'], ['x']], record('a')],
    ['strings of a record join without separator', [['v=STSv1; i', 'd=ab', 'c']], record('abc')],
    ['a split in the version token still joins', [['v=ST', 'Sv1;id=a']], record('a')],
    ['WSP before ";" still begins the record (erratum 6285)', [['v=STSv1 ; id=a']], record('a')],
    ['"v=STSv10" is another version, discarded', [['v=STSv10; id=x'], ['v=STSv1; id=a']], record('a')],
    ['"v=STSv2" is another version, discarded', [['v=STSv2; id=x']], { kind: 'none' }],
    ['bare "v=STSv1" does not begin with "v=STSv1;", discarded', [['v=STSv1']], { kind: 'none' }],
    ['case-sensitive version, "V=STSv1;" discarded', [['V=STSv1; id=x'], ['v=STSv1; id=a']], record('a')],
    ['leading space does not begin with v=STSv1', [[' v=STSv1; id=x']], { kind: 'none' }],
    ['extensions survive selection', [['v=STSv1; id=a; x=1']], record('a', [['x', '1']])],
  ];
  it.each(good)('%s', (_rule, rrset, want) => {
    expect(selectStsRecord(rrset)).toEqual(want);
  });

  // [what the rule says, TXT RRset, message]
  const bad: Array<[string, string[][], RegExp]> = [
    ['two STSv1 records: not exactly one', [['v=STSv1; id=a'], ['v=STSv1; id=b']], /^2 v=STSv1 records$/],
    ['two identical STSv1 records still count twice', [['v=STSv1; id=a'], ['v=STSv1; id=a']], /^2 v=STSv1 records$/],
    ['three STSv1 records', [['v=STSv1; id=a'], ['v=STSv1;id=b'], ['v=STSv1 ;id=c']], /^3 v=STSv1 records$/],
    ['an invalid STSv1 record still counts', [['v=STSv1; id=a'], ['v=STSv1; junk']], /^2 v=STSv1 records$/],
    ['the single STSv1 record is invalid', [['v=STSv1; id=test-123']], /sts-id/],
    ['the single STSv1 record lacks an id', [['v=STSv1; x=1']], /missing id/],
    ['joined strings give an invalid id', [['v=STSv1; id=a', ' b']], /offset/],
  ];
  it.each(bad)('%s', (_rule, rrset, message) => {
    const err = stsErrorOf(() => selectStsRecord(rrset));
    expect(err.reason).toBe('txt');
    expect(err.message).toMatch(message);
  });
});
