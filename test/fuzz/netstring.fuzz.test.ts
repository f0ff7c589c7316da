/**
 * The socketmap wire codec: the incremental NetstringDecoder, fed any byte stream cut into any chunks,
 * yields exactly the frames the reference decoder (written from netstrings.txt, over the whole stream at
 * once) finds, fails exactly when the reference does, never with anything but a NetstringError, and never
 * holds a payload over its cap. Then parseSocketmapRequest over any payload bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeNetstring, NetstringDecoder, NetstringError } from '../../src/server/postfix/netstring.js';
import { parseSocketmapRequest } from '../../src/server/postfix/session.js';
import { params, RUNS, timeoutFor } from './fuzz.js';
import { referenceNetstrings } from './reference-grammar.js';
import { cutIntoChunks } from './cut-chunks.js';
import { decodeFrames } from '../lab/netstring-frames.js';

const MAX = 64;

/** Stream pieces: valid frames (some at and over the cap), and the ways a frame goes wrong. */
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 12 }).map((b) => encodeNetstring(Buffer.from(b))) },
  { weight: 1, arbitrary: fc.integer({ min: MAX - 1, max: MAX + 1 }).map((n) => encodeNetstring(Buffer.alloc(n, 0x61))) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom('1000000000:', '1073741824:', '99999999999999999999999:', '00:', '01:a,', ':', ',', '0:', '3:abc', '3:abcd,', '-1:', '1 :a,', '\0', '\xff', '2:\xc3\x28,', 'postfix example.com')
      .map((s) => Buffer.from(s, 'latin1')),
  },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => Buffer.from(b)) },
);

const stream = fc.array(piece, { maxLength: 6 }).map((pieces) => Buffer.concat(pieces));

/** A stream and the chunk boundaries it arrives in. */
const chunked = fc
  .tuple(stream, fc.array(fc.nat(), { maxLength: 6 }))
  .map(([bytes, cuts]) => cutIntoChunks(bytes, cuts));

function decode(chunks: Buffer[]): { payloads: Buffer[]; error: boolean } {
  const d = new NetstringDecoder({ maxPayloadBytes: MAX });
  const payloads: Buffer[] = [];
  try {
    for (const chunk of chunks) decodeFrames(d, chunk, (p) => payloads.push(Buffer.from(p)));
  } catch (err) {
    if (!(err instanceof NetstringError)) throw err;
    return { payloads, error: true };
  }
  return { payloads, error: false };
}

function same(a: Buffer[], b: Buffer[]): boolean {
  return a.length === b.length && a.every((x, i) => x.equals(b[i]!));
}

describe('fuzz: NetstringDecoder against the reference decoder', () => {
  const runs = { streams: Math.ceil(RUNS * 0.8), bytes: Math.ceil(RUNS * 0.2) };

  it(`streams of frames and junk in random chunks (${runs.streams} inputs)`, { timeout: timeoutFor(runs.streams, 60) }, () => {
    let errors = 0;
    let frames = 0;
    fc.assert(
      fc.property(chunked, ({ bytes, chunks }) => {
        const want = referenceNetstrings(bytes, MAX);
        const got = decode(chunks);
        if (got.error !== want.error || !same(got.payloads, want.payloads)) {
          throw new Error(`decoder ${JSON.stringify({ error: got.error, n: got.payloads.length })} != reference ${JSON.stringify({ error: want.error, n: want.payloads.length })}`);
        }
        if (got.payloads.some((p) => p.length > MAX)) throw new Error('payload over the cap');
        errors += got.error ? 1 : 0;
        frames += got.payloads.length;
      }),
      params(runs.streams),
    );
    // Both outcomes were exercised, many times.
    expect(errors).toBeGreaterThan(runs.streams / 10);
    expect(frames).toBeGreaterThan(runs.streams);
  });

  it(`random bytes, fed one byte at a time and whole (${runs.bytes} inputs)`, { timeout: timeoutFor(runs.bytes, 80) }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (raw) => {
        const bytes = Buffer.from(raw);
        const want = referenceNetstrings(bytes, MAX);
        for (const chunks of [[bytes], [...bytes].map((b) => Buffer.from([b]))]) {
          const got = decode(chunks);
          if (got.error !== want.error || !same(got.payloads, want.payloads)) throw new Error('decoder and reference disagree');
        }
      }),
      params(runs.bytes),
    );
  });

  it('a 1 GB length prefix fails on the digit that passes the cap, without allocating', () => {
    const d = new NetstringDecoder({ maxPayloadBytes: 1024 });
    const before = process.memoryUsage().arrayBuffers;
    expect(() => d.decodeInto(Buffer.from('1073741824:'), [])).toThrow(expect.objectContaining({ code: 'too-long' }));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });
});

describe('fuzz: parseSocketmapRequest', () => {
  it(`any payload bytes give a request without control characters, or a reason (${Math.ceil(RUNS / 5)} inputs)`, { timeout: 60_000 }, () => {
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.constantFrom('postfix ', 'postfix', ' ', 'x  '), fc.string({ unit: 'binary', maxLength: 20 })).map(([a, b]) => Buffer.from(a + b, 'utf8')),
    );
    fc.assert(
      fc.property(payload, (bytes) => {
        const r = parseSocketmapRequest(bytes);
        if ('error' in r) {
          if (typeof r.error !== 'string' || r.error === '') throw new Error('empty reason');
          return;
        }
        const joined = Buffer.from(`${r.name} ${r.key}`, 'utf8');
        if (!joined.equals(bytes)) throw new Error('name and key do not re-encode to the request');
        if (r.name === '' || r.key === '' || r.name.includes(' ')) throw new Error('bad split');
        if (/[\x00-\x1f\x7f]/.test(r.name + r.key)) throw new Error('control character passed through');
      }),
      params(Math.ceil(RUNS / 5)),
    );
  });
});
