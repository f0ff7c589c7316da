/**
 * (In test/unit, not test/fuzz: pure and quick, so it runs with the unit project.)
 * The DANE branch's use of the wire codec (src/net/secure-dns.ts responseFromWire, the one path every
 * resolver reply takes): whatever bytes come back, nothing but an Error is thrown; a reply cut short or
 * carrying bytes past its end is refused whole; and a reply that is refused never yields DANE (the
 * DaneResolver reads it as a failed lookup: `temp`, which never downgrades either).
 */
import fc from 'fast-check';
import * as packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { responseFromWire, type SecureDnsClient, type SecureQueryType, type SecureResponse } from '../../src/net/secure-dns.js';
import { DaneResolver } from '../../src/resolver/dane.js';
import { params, RUNS, timeoutFor } from '../fuzz/fuzz.js';

const ID = 0x1234;
const HOST = 'mx1.example.test';
const TLSA_NAME = `_25._tcp.${HOST}`;

/** A validating resolver's authenticated reply (AD set) holding `answers`. */
function reply(name: string, type: SecureQueryType, answers: packet.Answer[]): Buffer {
  return packet.encode({
    type: 'response',
    id: ID,
    flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | packet.AUTHENTIC_DATA,
    questions: [{ name, type, class: 'IN' }],
    answers,
  });
}

const TLSA_REPLY = reply(TLSA_NAME, 'TLSA', [
  { name: TLSA_NAME, type: 'TLSA', ttl: 300, class: 'IN', data: { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 0xab) } } as packet.Answer,
]);
const MX_REPLY = reply('example.test', 'MX', [{ name: 'example.test', type: 'MX', ttl: 300, class: 'IN', data: { preference: 10, exchange: HOST } }]);
const A_REPLY = reply(HOST, 'A', [{ name: HOST, type: 'A', ttl: 300, class: 'IN', data: '192.0.2.1' }]);
const AAAA_REPLY = reply(HOST, 'AAAA', []);

/** A client whose replies go through responseFromWire, the TLSA one being the bytes under test. */
function wireClient(tlsa: Buffer): SecureDnsClient {
  const wire: Record<string, Buffer> = { MX: MX_REPLY, A: A_REPLY, AAAA: AAAA_REPLY, TLSA: tlsa };
  return {
    async query(name, type): Promise<SecureResponse> {
      try {
        return responseFromWire(wire[type]!, ID, name, type);
      } catch (err) {
        // As the real client does after its tries: an Error with the reason, never a response.
        throw new Error(`${name} ${type}: ${(err as Error).message}`);
      }
    },
  };
}

function tryDecode(buf: Buffer): 'ok' | 'refused' {
  try {
    responseFromWire(buf, ID, TLSA_NAME, 'TLSA');
    return 'ok';
  } catch (err) {
    if (!(err instanceof Error)) throw new Error(`threw a non-Error: ${String(err)}`);
    return 'refused';
  }
}

describe('secure DNS replies from the wire', () => {
  it('the unharmed reply gives dane-only (the baseline the properties below depart from)', async () => {
    expect(tryDecode(TLSA_REPLY)).toBe('ok');
    expect((await new DaneResolver(wireClient(TLSA_REPLY), { maxEntries: 1 }).resolve('example.test')).state).toBe('dane-only');
  });

  it('every strict prefix of a reply is refused (truncated)', () => {
    for (let n = 0; n < TLSA_REPLY.length; n++) expect(tryDecode(TLSA_REPLY.subarray(0, n)), `prefix ${n}`).toBe('refused');
  });

  it('a reply with bytes past its end is refused (oversize)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 70_000 }), (extra) => tryDecode(Buffer.concat([TLSA_REPLY, extra])) === 'refused'),
      params(Math.min(RUNS, 2_000)),
    );
  });

  it(
    'arbitrary bytes: only an Error is ever thrown',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
          tryDecode(Buffer.from(bytes));
        }),
        params(),
      );
    },
    timeoutFor(RUNS, 20),
  );

  it(
    'a mutated TLSA reply never crashes the resolver, and a refused one never yields DANE',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
          fc.option(fc.nat(), { nil: undefined }),
          async (edits, cut) => {
            const buf = Buffer.from(TLSA_REPLY);
            for (const e of edits) buf[e.at % buf.length] = e.value;
            const bytes = cut === undefined ? buf : buf.subarray(0, cut % (buf.length + 1));
            const decoded = tryDecode(bytes);
            const result = await new DaneResolver(wireClient(bytes), { maxEntries: 1 }).resolve('example.test');
            if (decoded === 'refused') expect(result.state).toBe('temp');
            else expect(['dane-only', 'dane', 'none', 'temp']).toContain(result.state);
          },
        ),
        params(Math.max(1, Math.floor(RUNS / 25))),
      );
    },
    timeoutFor(RUNS / 25, 1000),
  );
});
