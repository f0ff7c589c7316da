/**
 * The socketmap server with the real Postfix map handler over a real loopback socket, fed random streams
 * in random chunks: every reply it writes is a netstring holding a well-formed socketmap(5) reply, it
 * answers exactly the complete frames before the first framing error (plus one PERM for that error), a
 * frame gets PERM exactly when it is not a socketmap request (`name <space> key`, UTF-8, no control
 * characters), never for what its key holds (issue 13: Postfix defers on PERM), and a fresh client is
 * still answered correctly afterwards. Fewer inputs than the pure codec targets (each is a TCP connection); the codec
 * itself takes its 100k inputs in netstring.fuzz.test.ts.
 */
import fc from 'fast-check';
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startListeners, type Listeners } from '../../src/server/listen.js';
import { encodeNetstring, NetstringDecoder } from '../../src/server/postfix/netstring.js';
import { serveSocketmapConnection, socketmapServerOptions } from '../../src/server/postfix/session.js';
import { postfixMapHandler } from '../../src/server/postfix/map.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import { parsePolicy } from '../../src/sts/policy.js';
import { params } from './fuzz.js';
import { referenceNetstrings } from './reference-grammar.js';
import { cutIntoChunks } from './cut-chunks.js';
import { decodeFrames } from '../lab/netstring-frames.js';

const RUNS = 300;
const MAX_REQUEST = 64;
const REPLY = /^(?:OK secure match=mx\.[^\x00-\x1f ]+ servername=hostname|NOTFOUND |PERM [^\x00-\x1f\x7f]{1,500})$/u;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** socketmap(5) REQUEST FORMAT, plainly: `name <space> key`, both non-empty, UTF-8 without controls. */
function isRequest(payload: Buffer): boolean {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return false;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) return false;
  const space = text.indexOf(' ');
  return space > 0 && space < text.length - 1;
}

/** One enforce policy naming mx.<domain> for domains of odd length, none for the others. */
const lookup: PolicyLookup = {
  async lookup(domain): Promise<LookupResult> {
    if (domain.length % 2 === 0) return { kind: 'none', domain, why: 'no-record' };
    const text = `version: STSv1\nmode: enforce\nmx: mx.${domain}\nmax_age: 86400\n`;
    const entry = { domain, id: '1', policy: parsePolicy(text), text, fetchedAt: 0, expiresAt: 1e15, checkedAt: 0, lastError: null, failures: 0 };
    return { kind: 'policy', domain, entry, source: 'memory' };
  },
};
const options = socketmapServerOptions({ maxRequestBytes: MAX_REQUEST, requestTimeoutMs: 2_000, idleTimeoutMs: 2_000 });
let listeners: Listeners;
let port: number;

beforeAll(async () => {
  const handler = postfixMapHandler(lookup, { default: { strict_testing: false, tlsrpt: false } });
  listeners = await startListeners(['tcp:127.0.0.1:0'], (socket) => serveSocketmapConnection(socket, handler, options, pino({ level: 'silent' })), options, pino({ level: 'silent' }));
  port = (listeners.addresses[0] as { port: number }).port;
});
afterAll(() => listeners?.close());

/** Sends the chunks, half-closes, and collects every reply frame until the server closes (bounded). */
function exchange(chunks: Buffer[]): Promise<{ replies: string[]; badFraming: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const decoder = new NetstringDecoder({ maxPayloadBytes: 200_000 });
    const replies: string[] = [];
    let badFraming = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('server did not finish the exchange within 5 s'));
    }, 5_000);
    socket.on('data', (d: Buffer) => {
      try {
        decodeFrames(decoder, d, (f) => replies.push(f.toString('utf8')));
      } catch {
        badFraming = true;
      }
    });
    socket.on('error', () => {}); // a reset after PERM is allowed: the replies before it were read
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ replies, badFraming: badFraming || decoder.midFrame });
    });
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
      socket.end();
    });
  });
}

// Keys Postfix sends that carry no policy (issue 13), and some that do.
const KEYS = ['[smtp_relay.corp]', '[relay_1.example.com]:587', 'relay_1.example.com', '192.0.2.1.', '.example.com', 'localhost',
  'a..b.example', 'bücher.xn--zz', `${'a'.repeat(55)}.example`, 'example.com', 'Example.COM.', 'ex.org:25', '[]', 'a b', '*'];
const piece = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(fc.constantFrom('postfix ', 'x ', ''), fc.string({ unit: 'binary', maxLength: 20 })).map(([a, b]) => encodeNetstring(a + b)) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('postfix ', 'x ', ' ', 'postfix'), fc.constantFrom(...KEYS)).map(([a, b]) => encodeNetstring(a + b)) },
  { weight: 1, arbitrary: fc.constantFrom('1073741824:', '99:', '00:', ':', '3:abc;', '\0', '65:').map((s) => Buffer.from(s, 'latin1')) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 10 }).map((b) => Buffer.from(b)) },
);
const input = fc
  .tuple(fc.array(piece, { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 4 }))
  .map(([pieces, cuts]) => cutIntoChunks(Buffer.concat(pieces), cuts));

describe('fuzz: the socketmap server over a socket', () => {
  it(`answers exactly the complete frames, each with a well-formed reply (${RUNS} connections)`, { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(input, async ({ bytes, chunks }) => {
        const want = referenceNetstrings(bytes, MAX_REQUEST);
        const { replies, badFraming } = await exchange(chunks);
        if (badFraming) throw new Error('the server wrote something that is not a netstring');
        const bad = replies.find((r) => !REPLY.test(r));
        if (bad !== undefined) throw new Error(`reply ${JSON.stringify(bad)} is not a socketmap(5) reply`);
        // One reply per complete frame; a framing error adds a final PERM. (A stream cut mid-frame gets
        // no reply for that frame: the peer closed.)
        const expected = want.payloads.length + (want.error ? 1 : 0);
        if (replies.length !== expected) throw new Error(`${replies.length} replies, expected ${expected}`);
        if (want.error && !replies.at(-1)!.startsWith('PERM ')) throw new Error('framing error not answered with PERM');
        // Per frame: PERM exactly for what is not a request; a request's key never earns one.
        want.payloads.forEach((payload, i) => {
          if (replies[i]!.startsWith('PERM ') === isRequest(payload)) {
            throw new Error(`frame ${JSON.stringify(payload.toString('latin1'))} answered ${JSON.stringify(replies[i])}`);
          }
        });
      }),
      params(RUNS),
    );
    const after = await exchange([encodeNetstring('postfix example.com')]);
    if (after.replies[0] !== 'OK secure match=mx.example.com servername=hostname') throw new Error(`afterwards: ${after.replies[0]}`);
  });
});
