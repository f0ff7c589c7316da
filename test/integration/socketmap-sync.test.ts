/**
 * The socketmap server with handlers that answer at once (a string, as cached answers do) as well as
 * later (a promise): replies stay in request order, the limits and timeouts hold as with promises only.
 */
import net, { type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SOCKETMAP } from '../../src/config/defaults.js';
import { startListeners, type BoundAddress } from '../../src/server/listen.js';
import { encodeNetstring, NetstringDecoder } from '../../src/server/postfix/netstring.js';
import {
  serveSocketmapConnection,
  socketmapServerOptions,
  type SocketmapHandler,
  type SocketmapServerOptions,
} from '../../src/server/postfix/session.js';
import { decodeFrames } from '../lab/netstring-frames.js';
import { sleep as delay, waitFor as until } from '../lab/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function serve(handler: SocketmapHandler, overrides: Partial<SocketmapServerOptions> = {}): Promise<BoundAddress> {
  const logger = pino({ level: 'silent' });
  const options = socketmapServerOptions({ idleTimeoutMs: 10_000, requestTimeoutMs: 10_000, ...overrides });
  const listeners = await startListeners(['tcp:127.0.0.1:0'], (s) => serveSocketmapConnection(s, handler, options, logger), options, logger);
  cleanups.push(() => listeners.close());
  return listeners.addresses[0]!;
}

async function connect(address: BoundAddress): Promise<{ socket: Socket; replies: string[]; closed: () => boolean }> {
  if (address.kind !== 'tcp') throw new Error('tcp only');
  const socket = net.connect({ host: address.host, port: address.port });
  cleanups.push(() => void socket.destroy());
  await new Promise<void>((ok, fail) => socket.once('connect', ok).once('error', fail));
  const replies: string[] = [];
  let closed = false;
  const decoder = new NetstringDecoder({ maxPayloadBytes: 2 * SOCKETMAP.MAX_REPLY_BYTES });
  socket.on('data', (chunk: Buffer) => {
    decodeFrames(decoder, chunk, (p) => replies.push(p.toString('utf8')));
  });
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  return { socket, replies, closed: () => closed };
}

const send = (socket: Socket, ...payloads: string[]) => socket.write(Buffer.concat(payloads.map((p) => encodeNetstring(p))));

/**
 * `now.*` keys are answered at once, `later.*` keys after a delay, `throw.*` keys throw. The delays are
 * the behaviour under test (answers that come later than the ones after them), not synchronisation.
 */
const mixed: SocketmapHandler = (_name, key) => {
  if (key.startsWith('throw')) throw new Error('boom');
  if (key.startsWith('now')) return `OK ${key}`;
  return delay(key.startsWith('later.slow') ? 60 : 5).then(() => `OK ${key}`);
};

describe('socketmap server: answers known at once', () => {
  it('keeps request order across pipelined immediate and later answers', async () => {
    const c = await connect(await serve(mixed));
    const keys = ['later.slow.1', 'now.1', 'later.2', 'now.2', 'throw.1', 'now.3', 'later.slow.3', 'now.4'];
    send(c.socket, ...keys.map((k) => `postfix ${k}`));
    await until(() => c.replies.length === keys.length, 'all replies');
    expect(c.replies).toEqual(keys.map((k) => (k.startsWith('throw') ? 'TEMP lookup failed' : `OK ${k}`)));
    // One at a time, as Postfix asks.
    for (const k of ['now.5', 'later.6', 'throw.2', 'now.7']) {
      const before = c.replies.length;
      send(c.socket, `postfix ${k}`);
      await until(() => c.replies.length === before + 1, k);
    }
    expect(c.replies.slice(-4)).toEqual(['OK now.5', 'OK later.6', 'TEMP lookup failed', 'OK now.7']);
  });

  it('replaces an immediate reply longer than socketmap_max_reply_size with PERM', async () => {
    const c = await connect(await serve(() => 'OK ' + 'x'.repeat(SOCKETMAP.MAX_REPLY_BYTES)));
    send(c.socket, 'postfix example.com');
    await until(() => c.replies.length === 1, 'reply');
    expect(c.replies[0]).toMatch(/^PERM reply longer than/);
  });

  it('stops taking requests while the client does not read immediate replies', async () => {
    const big = 'OK ' + 'x'.repeat(SOCKETMAP.MAX_REPLY_BYTES - 3);
    let lookups = 0;
    const c = await connect(
      await serve(() => {
        lookups += 1;
        return big;
      }),
    );
    c.socket.pause();
    const total = 400; // 40 MB of replies
    send(c.socket, ...Array.from({ length: total }, (_, i) => `postfix d${i}.example`));
    // What is tested is that the lookups stop: poll (bounded, 2 s) until a 50 ms stretch adds none.
    let seen = -1;
    for (let i = 0; i < 40 && lookups !== seen; i++) {
      seen = lookups;
      await delay(50);
    }
    expect(lookups).toBe(seen);
    expect(lookups).toBeLessThan(total);
    c.socket.resume();
    await until(() => c.replies.length === total, 'all replies');
  });

  it('closes after idleTimeoutMs without requests, not while requests keep coming', async () => {
    const c = await connect(await serve(mixed, { idleTimeoutMs: 150 }));
    const started = Date.now();
    for (let i = 0; i < 8; i++) {
      send(c.socket, `postfix now.${i}`);
      await delay(60); // behaviour under test: requests spaced by less than the idle timeout
    }
    expect(c.closed()).toBe(false);
    expect(c.replies).toHaveLength(8);
    expect(Date.now() - started).toBeGreaterThan(400);
    const quietSince = Date.now();
    await until(c.closed, 'idle close');
    const waited = Date.now() - quietSince;
    expect(waited).toBeGreaterThanOrEqual(80);
    expect(waited).toBeLessThan(1_000);
  });
});
