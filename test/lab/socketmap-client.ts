/**
 * A socketmap client for tests that need many queries quickly (postmap starts a process per call).
 * Speaks the same netstrings as Postfix: one request, wait for its reply, next.
 */
import { connect, type Socket } from 'node:net';
import { encodeNetstring, NetstringDecoder } from '../../src/server/postfix/netstring.js';
import { decodeFrames } from './netstring-frames.js';

const REPLY_TIMEOUT_MS = 20_000;

export interface SocketmapClient {
  query(name: string, key: string): Promise<string>;
  close(): void;
}

export async function connectSocketmap(target: { port: number; host?: string } | { path: string }): Promise<SocketmapClient> {
  const socket: Socket = 'path' in target ? connect(target.path) : connect(target.port, target.host ?? '127.0.0.1');
  await new Promise<void>((ok, fail) => socket.once('connect', ok).once('error', fail));
  const decoder = new NetstringDecoder({ maxPayloadBytes: 1 << 20 });
  const replies: string[] = [];
  let waiter: (() => void) | undefined;
  let failure: Error | undefined;
  socket.on('data', (chunk: Buffer) => {
    try {
      decodeFrames(decoder, chunk, (frame) => replies.push(frame.toString('utf8')));
    } catch (err) {
      failure = err as Error;
    }
    waiter?.();
  });
  socket.on('close', () => {
    failure ??= new Error('connection closed');
    waiter?.();
  });
  socket.on('error', (err) => {
    failure = err;
    waiter?.();
  });
  return {
    async query(name, key) {
      socket.write(encodeNetstring(`${name} ${key}`));
      const deadline = Date.now() + REPLY_TIMEOUT_MS;
      while (replies.length === 0) {
        if (failure) throw failure;
        if (Date.now() > deadline) throw new Error(`no reply to ${name} ${key}`);
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 100);
        });
      }
      return replies.shift()!;
    },
    close: () => socket.destroy(),
  };
}
