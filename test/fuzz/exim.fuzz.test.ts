/**
 * The Exim line protocol: parseEximRequest against a reference grammar written from the protocol's own
 * description (src/server/exim/session.ts: `policy DOMAIN` / `mx DOMAIN MXHOST`, words separated by SP or HTAB,
 * verb case-insensitive, UTF-8, no control characters but HTAB), and the reply for any request: exactly
 * one line of key=value pairs that Exim's ${extract} reads back, with a `mode` (an answer) or an `error`;
 * a well-formed request always gets an answer (`mode`), whatever its domain or MX name: the contrib router
 * defers on `error`, and a key that cannot carry a policy must not stop a delivery (issue 13). Then the
 * server over a real socket with random bytes.
 */
import fc from 'fast-check';
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startListeners, type Listeners } from '../../src/server/listen.js';
import { eximServerOptions, parseEximRequest, serveEximConnection } from '../../src/server/exim/session.js';
import { eximLookupHandler } from '../../src/server/exim/lookup.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import { parsePolicy } from '../../src/sts/policy.js';
import { mutated, params, RUNS, timeoutFor } from './fuzz.js';

// Reference: request = *WSP verb 1*WSP word [1*WSP word] *WSP, word = 1*(any UTF-8 but SP, HTAB, controls).
const WORD = '[^\\x00-\\x20\\x7f]+';
const REFERENCE = new RegExp(`^[ \\t]*(?:(policy)[ \\t]+(${WORD})|(mx)[ \\t]+(${WORD})[ \\t]+(${WORD}))[ \\t]*$`, 'iu');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function reference(raw: Buffer): { verb: string; domain: string; host?: string } | null {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return null;
  }
  const m = REFERENCE.exec(text);
  if (m === null) return null;
  return m[1] ? { verb: 'policy', domain: m[2]! } : { verb: 'mx', domain: m[4]!, host: m[5]! };
}

const word = fc.oneof(
  fc.constantFrom('example.com', 'mx1.example.com', 'EXAMPLE.com.', 'bücher.example', '[192.0.2.1]', '.parent.example', 'x'.repeat(70), 'a'),
  fc.string({ unit: fc.constantFrom(...'ab.-:[]é\u00a0'), minLength: 1, maxLength: 8 }),
);
const ws = fc.constantFrom(' ', '\t', '  ', ' \t ');
const line = mutated(
  fc
    .tuple(fc.constantFrom('', '', ' '), fc.constantFrom('policy', 'mx', 'POLICY', 'Mx', 'polic', 'mxx', ''), fc.array(fc.tuple(ws, word), { maxLength: 3 }), fc.constantFrom('', '', '\t'))
    .map(([lead, verb, words, trail]) => lead + verb + words.map(([w, x]) => w + x).join('') + trail),
  [' ', '\t', '\0', '\r', '\n', '\x7f', 'é', '\ud800', 'a'],
).map((s) => Buffer.from(s, 'utf8'));
const bytes = fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b));

const POLICY = parsePolicy('version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n');
const lookup: PolicyLookup = {
  async lookup(domain): Promise<LookupResult> {
    if (domain.length % 2 === 0) return { kind: 'none', domain, why: 'no-record' };
    const entry = { domain, id: 'abc', policy: POLICY, text: '', fetchedAt: 0, expiresAt: 1e15, checkedAt: 0, lastError: null, failures: 0 };
    return { kind: 'policy', domain, entry, source: 'memory' };
  },
};
const handler = eximLookupHandler(lookup);
const silent = pino({ level: 'silent' });
// One line of key=value pairs; a value is bare ([A-Za-z0-9._*:@/+-]+) or "quoted" with \ escapes.
const VALUE = '(?:[A-Za-z0-9._*:@/+-]+|"(?:[^"\\\\\\n]|\\\\.)*")';
const REPLY = new RegExp(`^[a-z_]+=${VALUE}(?: [a-z_]+=${VALUE})*\\n$`);

function checkReply(reply: string): void {
  if (!REPLY.test(reply)) throw new Error(`reply ${JSON.stringify(reply)} is not one key=value line`);
  if (!/^(?:mode=|allowed=(?:yes|no) mode=|error=)/.test(reply)) throw new Error(`reply ${JSON.stringify(reply)} has neither mode nor error`);
}

describe('fuzz: parseEximRequest against the reference grammar', () => {
  const runs = { near: Math.ceil(RUNS * 0.6), bytes: Math.ceil(RUNS * 0.2), replies: Math.ceil(RUNS * 0.2) };

  it(`near-valid lines and random bytes (${runs.near + runs.bytes} inputs): accepts <=> the reference accepts`, { timeout: timeoutFor(runs.near + runs.bytes, 40) }, () => {
    let accepted = 0;
    const agrees = (raw: Buffer) => {
      const want = reference(raw);
      const got = parseEximRequest(raw);
      if ('error' in got) {
        if (want !== null) throw new Error(`refused a valid request: ${JSON.stringify(raw.toString())}`);
        return;
      }
      accepted++;
      if (want === null) throw new Error(`accepted what the grammar rejects: ${JSON.stringify(raw.toString())}`);
      if (got.verb !== want.verb || got.domain !== want.domain || (got.verb === 'mx' && got.host !== want.host)) {
        throw new Error(`parsed ${JSON.stringify(raw.toString())} as ${JSON.stringify(got)}, the reference as ${JSON.stringify(want)}`);
      }
    };
    fc.assert(fc.property(line, agrees), params(runs.near));
    fc.assert(fc.property(bytes, agrees), params(runs.bytes));
    expect(accepted).toBeGreaterThan(runs.near / 10);
  });

  it(`every well-formed request gets one reply line with a mode, never error (${runs.replies} inputs)`, { timeout: timeoutFor(runs.replies, 80) }, async () => {
    await fc.assert(
      fc.asyncProperty(line, async (raw) => {
        const request = parseEximRequest(raw);
        if ('error' in request) return;
        const reply = await handler(request, silent);
        checkReply(reply);
        if (!/^(?:mode=|allowed=(?:yes|no) mode=)/.test(reply)) throw new Error(`${JSON.stringify(raw.toString())}: ${JSON.stringify(reply)} is no answer`);
      }),
      params(runs.replies),
    );
  });
});

describe('fuzz: the Exim server over a socket', () => {
  let listeners: Listeners;
  let port: number;
  const options = eximServerOptions({ maxRequestBytes: 128, requestTimeoutMs: 2_000 });
  beforeAll(async () => {
    listeners = await startListeners(['tcp:127.0.0.1:0'], (s) => serveEximConnection(s, handler, options, silent), options, silent);
    port = (listeners.addresses[0] as { port: number }).port;
  });
  afterAll(() => listeners?.close());

  const exchange = (chunks: Buffer[]) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let out = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('no close within 5 s'));
      }, 5_000);
      socket.on('data', (d: Buffer) => (out += d.toString('utf8')));
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(out);
      });
      socket.on('connect', () => {
        for (const c of chunks) socket.write(c);
        socket.end();
      });
    });

  it('any bytes, in any chunks: exactly one well-formed reply line, then close (300 connections)', { timeout: 120_000 }, async () => {
    const input = fc.tuple(fc.oneof(line, bytes, fc.constant(Buffer.alloc(4096, 0x61))), fc.nat()).map(([b, cut]) => {
      const at = cut % (b.length + 1);
      return [b.subarray(0, at), b.subarray(at)];
    });
    await fc.assert(
      fc.asyncProperty(input, async (chunks) => {
        const reply = await exchange(chunks);
        checkReply(reply);
      }),
      params(300),
    );
    checkReply(await exchange([Buffer.from('policy example.org\n')]));
  });
});
