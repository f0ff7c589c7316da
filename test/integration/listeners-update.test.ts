/**
 * Listeners.update() (config reload): new specs are bound, removed ones stop and their connections end
 * gracefully, unchanged ones keep their connections. Real sockets on 127.0.0.1 and in a temp directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startListeners, type Listeners } from '../../src/server/listen.js';

const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Echo server: each connection answers every chunk with "<listener spec>:<chunk>". */
async function echoListeners(specs: string[]): Promise<Listeners> {
  const listeners = await startListeners(
    specs,
    (socket, listener) => {
      socket.on('data', (d) => socket.write(`${listener.spec}:${d.toString()}`));
      socket.on('end', () => socket.end());
    },
    { maxConnections: 10, unixMode: 0o600, shutdownGraceMs: 200 },
    logger,
  );
  cleanups.push(() => listeners.close());
  return listeners;
}

function connectTo(target: { port: number } | { path: string }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? net.connect(target.path) : net.connect(target.port, '127.0.0.1');
    socket.once('connect', () => resolve(socket)).once('error', reject);
    cleanups.push(() => void socket.destroy());
  });
}

function ask(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (d) => resolve(d.toString()));
    socket.once('error', reject);
    socket.write(text);
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())));
}

function refused(target: { port: number }): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(target.port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'listen-update-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('Listeners.update', () => {
  it('binds a new spec, keeps the unchanged one and its open connection', async () => {
    const listeners = await echoListeners(['tcp:127.0.0.1:0']);
    const first = listeners.addresses[0]!;
    if (first.kind !== 'tcp') throw new Error('tcp expected');
    const kept = await connectTo({ port: first.port });
    expect(await ask(kept, 'a')).toBe('tcp:127.0.0.1:0:a');

    const dir = await tempDir();
    const sock = path.join(dir, 'new.sock');
    const result = await listeners.update([first.spec, `unix:${sock}`]);
    expect(result).toEqual({ opened: [`unix:${sock}`], closed: [] });
    expect(listeners.addresses.map((a) => a.spec)).toEqual([first.spec, `unix:${sock}`]);

    expect(await ask(kept, 'b')).toBe('tcp:127.0.0.1:0:b');
    const fresh = await connectTo({ path: sock });
    expect(await ask(fresh, 'c')).toBe(`unix:${sock}:c`);
    expect(listeners.connectionCount).toBe(2);
  });

  it('stops a removed spec: no new connections, its open ones end, the others stay', async () => {
    const listeners = await echoListeners(['tcp:127.0.0.1:0']);
    const dir = await tempDir();
    const sock = path.join(dir, 'stay.sock');
    const tcp = listeners.addresses[0]!;
    if (tcp.kind !== 'tcp') throw new Error('tcp expected');
    await listeners.update([tcp.spec, `unix:${sock}`]);
    const onRemoved = await connectTo({ port: tcp.port });
    const onKept = await connectTo({ path: sock });
    expect(await ask(onRemoved, 'x')).toContain(':x');

    const result = await listeners.update([`unix:${sock}`]);
    expect(result).toEqual({ opened: [], closed: [tcp.spec] });
    await closed(onRemoved);
    expect(await refused({ port: tcp.port })).toBe('ECONNREFUSED');
    expect(await ask(onKept, 'y')).toBe(`unix:${sock}:y`);
  });

  it('a spec that cannot be bound changes nothing and names the spec', async () => {
    const listeners = await echoListeners(['tcp:127.0.0.1:0']);
    const blocker = net.createServer();
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
    cleanups.push(() => new Promise<void>((ok) => blocker.close(() => ok())));
    const taken = (blocker.address() as net.AddressInfo).port;
    const dir = await tempDir();
    const before = listeners.addresses.map((a) => a.spec);

    await expect(listeners.update([...before, `unix:${dir}/a.sock`, `tcp:127.0.0.1:${taken}`])).rejects.toThrow(
      `listen tcp:127.0.0.1:${taken}: `,
    );
    expect(listeners.addresses.map((a) => a.spec)).toEqual(before);
    // The unix socket bound before the failure was closed again, file and all.
    await expect(connectTo({ path: `${dir}/a.sock` })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a lower connection limit applies to new connections', async () => {
    const listeners = await echoListeners(['tcp:127.0.0.1:0']);
    const a = listeners.addresses[0]!;
    if (a.kind !== 'tcp') throw new Error('tcp expected');
    const first = await connectTo({ port: a.port });
    expect(await ask(first, '1')).toContain(':1');
    await listeners.update([a.spec], { maxConnections: 1 });
    const second = await connectTo({ port: a.port });
    await closed(second);
    expect(await ask(first, '2')).toContain(':2');
  });
});

describe('Listeners.prepareUpdate', () => {
  it('abort() closes what it bound and leaves the rest as it was', async () => {
    const listeners = await echoListeners(['tcp:127.0.0.1:0']);
    const tcp = listeners.addresses[0]!;
    if (tcp.kind !== 'tcp') throw new Error('tcp expected');
    const kept = await connectTo({ port: tcp.port });
    const dir = await tempDir();
    const pending = await listeners.prepareUpdate([`unix:${dir}/p.sock`]);
    expect(pending).toMatchObject({ opened: [`unix:${dir}/p.sock`], closed: [tcp.spec] });
    await pending.abort();
    expect(listeners.addresses.map((a) => a.spec)).toEqual([tcp.spec]);
    await expect(connectTo({ path: `${dir}/p.sock` })).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await ask(kept, 'still')).toBe('tcp:127.0.0.1:0:still');
  });

  it('commit() after close() binds nothing new', async () => {
    const listeners = await echoListeners(['tcp:127.0.0.1:0']);
    const dir = await tempDir();
    const pending = await listeners.prepareUpdate([`unix:${dir}/late.sock`]);
    await listeners.close();
    pending.commit();
    await expect(connectTo({ path: `${dir}/late.sock` })).rejects.toMatchObject({ code: expect.stringMatching(/^(ENOENT|ECONNREFUSED)$/) });
  });
});
