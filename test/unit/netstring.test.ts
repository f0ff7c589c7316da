import { describe, expect, it } from 'vitest';
import {
  encodeNetstring,
  NetstringDecoder,
  NetstringError,
  type NetstringErrorCode,
} from '../../src/server/postfix/netstring.js';
import { decodeFrames } from '../lab/netstring-frames.js';

const MAX = 64;

function decoder(max = MAX): NetstringDecoder {
  return new NetstringDecoder({ maxPayloadBytes: max });
}

/** Feeds chunks in order; returns the payloads (as latin1 strings, byte-exact) and the error, if any. */
function run(chunks: Buffer[], d = decoder()): { payloads: string[]; error?: NetstringError } {
  const payloads: string[] = [];
  try {
    for (const chunk of chunks) decodeFrames(d, chunk, (p) => payloads.push(p.toString('latin1')));
  } catch (err) {
    if (!(err instanceof NetstringError)) throw err;
    return { payloads, error: err };
  }
  return { payloads };
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Every way to cut `input` into two pieces, plus one byte at a time. */
function splits(input: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i <= input.length; i++) out.push([input.subarray(0, i), input.subarray(i)]);
  out.push([...input].map((b) => Buffer.from([b])));
  return out;
}

// One line per case: [wire bytes, payload].
const good: [string, string][] = [
  ['0:,', ''],
  ['1:a,', 'a'],
  ['12:hello world!,', 'hello world!'], // netstrings.txt §2 example
  ['19:postfix example.com,', 'postfix example.com'],
  ['5:a:b,c,', 'a:b,c'], // ':' and ',' inside the payload are data
  ['3:\x00\xff\n,', '\x00\xff\n'], // any bytes
  ['2:\xc3\xa9,', '\xc3\xa9'], // UTF-8 "é" is two bytes
  [`${MAX}:${'x'.repeat(MAX)},`, 'x'.repeat(MAX)], // exactly at the cap
];

// One line per case: [wire bytes, error code] // why.
const bad: [string, NetstringErrorCode][] = [
  [':,', 'bad-length'], // empty length
  ['01:a,', 'bad-length'], // leading zero
  ['00:,', 'bad-length'], // leading zero on an empty string
  ['a:', 'bad-length'], // non-digit length
  ['1a:a,', 'bad-length'], // digit then non-digit
  ['-1:', 'bad-length'], // sign
  ['+1:a,', 'bad-length'], // sign
  [' 1:a,', 'bad-length'], // leading space
  ['1 :a,', 'bad-length'], // space before ':'
  ['1,a', 'bad-length'], // ',' where ':' belongs
  ['5hello,', 'bad-length'], // missing ':'
  ['1:ab,', 'bad-terminator'], // payload longer than its length
  ['1:a;', 'bad-terminator'], // wrong terminator
  ['0:x', 'bad-terminator'], // empty payload, no ','
  ['3:abc:', 'bad-terminator'],
  [`${MAX + 1}:`, 'too-long'], // one over the cap
  ['999999999999:', 'too-long'], // absurd length
  ['99999999999999999999999999:', 'too-long'], // beyond Number precision
];

describe('NetstringDecoder: valid frames', () => {
  it.each(good)('decodes %j at every split', (wire, want) => {
    for (const chunks of splits(bytes(wire))) {
      expect(run(chunks)).toEqual({ payloads: [want] });
    }
  });

  it('decodes every valid frame back to back, at every split and one byte at a time', () => {
    const stream = bytes(good.map(([wire]) => wire).join(''));
    const want = good.map(([, payload]) => payload);
    for (const chunks of splits(stream)) expect(run(chunks).payloads).toEqual(want);
  });

  it('decodes the stream in uneven chunk sizes reused by one decoder', () => {
    const stream = bytes(good.map(([wire]) => wire).join(''));
    const want = good.map(([, payload]) => payload);
    for (let size = 1; size <= 9; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      expect(run(chunks).payloads).toEqual(want);
    }
  });

  it('decodes many frames from one chunk', () => {
    const n = 200;
    const stream = Buffer.concat(Array.from({ length: n }, (_, i) => encodeNetstring(`postfix d${i}.example`)));
    const { payloads } = run([stream]);
    expect(payloads).toHaveLength(n);
    expect(payloads[0]).toBe('postfix d0.example');
    expect(payloads[n - 1]).toBe(`postfix d${n - 1}.example`);
  });

  it('accepts a payload whose bytes arrive in several chunks without changing earlier payloads', () => {
    const d = decoder();
    const first: Buffer[] = [];
    d.decodeInto(bytes('3:abc,4:de'), first);
    const second: Buffer[] = [];
    d.decodeInto(bytes('fg,'), second);
    expect(first.map(String)).toEqual(['abc']);
    expect(second.map(String)).toEqual(['defg']);
  });
});

describe('NetstringDecoder: malformed frames', () => {
  it.each(bad)('rejects %j with %s at every split', (wire, code) => {
    for (const chunks of splits(bytes(wire))) {
      const { payloads, error } = run(chunks);
      expect(payloads).toEqual([]);
      expect(error?.code).toBe(code);
    }
  });

  it.each(bad)('yields the frames before %j, then fails', (wire, code) => {
    const { payloads, error } = run([bytes(`1:a,2:bc,${wire}3:def,`)]);
    expect(payloads).toEqual(['a', 'bc']);
    expect(error?.code).toBe(code);
  });

  it('stays dead after a framing error, even when fed valid frames', () => {
    const d = decoder();
    expect(run([bytes('01:a,')], d).error?.code).toBe('bad-length');
    const again = run([bytes('1:a,')], d);
    expect(again.payloads).toEqual([]);
    expect(again.error?.code).toBe('bad-length');
    expect(d.failure?.code).toBe('bad-length');
  });

  it('is a NetstringError with a message', () => {
    const { error } = run([bytes('1:a;')]);
    expect(error).toBeInstanceOf(NetstringError);
    expect(error?.name).toBe('NetstringError');
    expect(error?.message).toMatch(/","/);
  });
});

describe('NetstringDecoder: the size cap', () => {
  it('fails on the digit that exceeds the cap, before any ":" or payload arrives', () => {
    const d = decoder(1024);
    expect(run([bytes('999')], d)).toEqual({ payloads: [] }); // 999 <= 1024: keep reading
    expect(run([bytes('9')], d).error?.code).toBe('too-long'); // 9999 > 1024
  });

  it('fails on a 12-digit length fed one byte at a time, at the fourth digit', () => {
    const d = decoder(1024);
    const prefix = bytes('999999999999:');
    let failedAt = -1;
    for (let i = 0; i < prefix.length && failedAt < 0; i++) {
      if (run([prefix.subarray(i, i + 1)], d).error) failedAt = i;
    }
    expect(failedAt).toBe(3);
  });

  it('accepts exactly the cap and refuses one more', () => {
    expect(run([bytes('4:abcd,')], decoder(4)).payloads).toEqual(['abcd']);
    expect(run([bytes('5:')], decoder(4)).error?.code).toBe('too-long');
  });

  it('with a cap of 0 accepts only the empty string', () => {
    expect(run([bytes('0:,0:,')], decoder(0)).payloads).toEqual(['', '']);
    expect(run([bytes('1:')], decoder(0)).error?.code).toBe('too-long');
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses maxPayloadBytes %s', (max) => {
    expect(() => new NetstringDecoder({ maxPayloadBytes: max })).toThrow(RangeError);
  });
});

describe('NetstringDecoder: midFrame', () => {
  it('is true from the first length digit until the terminating ","', () => {
    const d = decoder();
    const states: boolean[] = [d.midFrame];
    for (const b of bytes('2:ab,')) {
      d.decodeInto(Buffer.from([b]), []);
      states.push(d.midFrame);
    }
    expect(states).toEqual([false, true, true, true, true, false]);
  });
});

describe('encodeNetstring', () => {
  it.each([
    ['', '0:,'],
    ['a', '1:a,'],
    ['NOTFOUND ', '9:NOTFOUND ,'],
    ['é', '2:\xc3\xa9,'], // the length counts bytes, not characters
  ])('encodes %j as %j', (payload, wire) => {
    expect(encodeNetstring(payload).toString('latin1')).toBe(wire);
  });

  it('encodes a Buffer byte for byte', () => {
    expect(encodeNetstring(Buffer.from([0, 0x2c, 0xff]))).toEqual(Buffer.from('3:\x00,\xff,', 'latin1'));
  });

  it('round-trips through the decoder', () => {
    const payloads = ['', 'OK secure match=.example.net servername=hostname', 'PERM bad', 'x'.repeat(MAX)];
    const stream = Buffer.concat(payloads.map((p) => encodeNetstring(p)));
    expect(run([stream]).payloads).toEqual(payloads);
  });
});
