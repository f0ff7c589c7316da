/**
 * The socketmap server over real loopback sockets (TCP on 127.0.0.1 port 0, unix sockets in a temporary
 * directory), with a stub lookup handler: the wire behaviour Postfix (socketmap_table(5)) and
 * pipelining clients depend on.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SOCKETMAP } from '../../src/config/defaults.js';
import { parseListenSpec, startListeners, type BoundAddress, type Listeners } from '../../src/server/listen.js';
import { encodeNetstring, NetstringDecoder } from '../../src/server/postfix/netstring.js';
import {
  serveSocketmapConnection,
  socketmapServerOptions,
  type SocketmapHandler,
  type SocketmapServerOptions,
} from '../../src/server/postfix/session.js';
import { decodeFrames } from '../lab/netstring-frames.js';
import { sleep as delay, waitFor, within as withinMs } from '../lab/wait.js';

const WAIT_MS = 2_000;
const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

interface LogLine {
  level: number;
  msg: string;
  peer?: string;
  reason?: string;
  code?: string;
}

// ---------- helpers ----------

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Waits until `cond` holds (bounded by lab/wait's WAIT_MS: generous, as a loaded machine needs). */
const until = (cond: () => boolean, what: string): Promise<void> => waitFor(cond, what);
/** `p`, or a failure naming `what` after `ms`. */
const within = <T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> => withinMs(p, what, ms);

/** A socketmap client that reads netstring replies and records when the server closed on it. */
class Client {
  readonly replies: string[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private consumed = 0;
  private readonly decoder = new NetstringDecoder({ maxPayloadBytes: 2 * SOCKETMAP.MAX_REPLY_BYTES });
  private readonly watchers = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      decodeFrames(this.decoder, chunk, (p) => this.replies.push(p.toString('utf8')));
      this.notify();
    });
    socket.on('error', () => {}); // resets are part of what some tests provoke
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.notify();
        resolve();
      }),
    );
  }

  static connect(target: BoundAddress): Promise<Client> {
    const socket =
      target.kind === 'tcp' ? net.connect({ host: target.host, port: target.port }) : net.connect({ path: target.path });
    cleanups.push(() => {
      socket.destroy();
    });
    return within(
      new Promise<Client>((resolve, reject) => {
        socket.once('connect', () => resolve(new Client(socket)));
        socket.once('error', reject);
      }),
      'connect',
    );
  }

  send(...payloads: (string | Buffer)[]): void {
    this.socket.write(Buffer.concat(payloads.map((p) => encodeNetstring(p))));
  }

  sendRaw(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** The next reply not yet returned; rejects if the connection closes first. */
  reply(): Promise<string> {
    return within(
      new Promise<string>((resolve, reject) => {
        const check = (): void => {
          if (this.replies.length > this.consumed) {
            this.watchers.delete(check);
            resolve(this.replies[this.consumed++] as string);
          } else if (this.isClosed) {
            this.watchers.delete(check);
            reject(new Error('connection closed before a reply'));
          }
        };
        this.watchers.add(check);
        check();
      }),
      'reply',
    );
  }

  async ask(payload: string | Buffer): Promise<string> {
    this.send(payload);
    return this.reply();
  }

  private notify(): void {
    for (const w of [...this.watchers]) w();
  }
}

/** A handler whose lookups stay pending until the test settles them. */
function heldHandler() {
  const calls: { name: string; key: string; resolve: (r: string) => void; reject: (e: Error) => void }[] = [];
  const handler: SocketmapHandler = (name, key) =>
    new Promise((resolve, reject) => calls.push({ name, key, resolve, reject }));
  return { handler, calls };
}

const echo: SocketmapHandler = async (name, key) => `OK ${name}|${key}`;

interface Served {
  listeners: Listeners;
  address: BoundAddress;
  logs: LogLine[];
  options: SocketmapServerOptions;
}

async function serve(
  handler: SocketmapHandler,
  overrides: Partial<SocketmapServerOptions> = {},
  specs: string[] = ['tcp:127.0.0.1:0'],
): Promise<Served> {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const options = socketmapServerOptions({ idleTimeoutMs: 10_000, requestTimeoutMs: 10_000, ...overrides });
  const listeners = await startListeners(
    specs,
    (socket) => serveSocketmapConnection(socket, handler, options, logger),
    options,
    logger,
  );
  cleanups.push(() => listeners.close());
  return { listeners, address: listeners.addresses[0] as BoundAddress, logs, options };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'socketmap-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function warnings(logs: LogLine[], msg: RegExp): LogLine[] {
  return logs.filter((l) => l.level >= LEVEL.warn && msg.test(l.msg));
}

// ---------- listen specs ----------

describe('parseListenSpec', () => {
  it.each([
    ['tcp:127.0.0.1:8461', { kind: 'tcp', host: '127.0.0.1', port: 8461 }],
    ['tcp:localhost:0', { kind: 'tcp', host: 'localhost', port: 0 }],
    ['tcp:[::1]:8461', { kind: 'tcp', host: '::1', port: 8461 }],
    ['tcp:0.0.0.0:65535', { kind: 'tcp', host: '0.0.0.0', port: 65535 }],
    ['unix:/run/mta-sts/socketmap.sock', { kind: 'unix', path: '/run/mta-sts/socketmap.sock' }],
  ])('parses %s', (spec, want) => {
    expect(parseListenSpec(spec)).toEqual({ spec, ...want });
  });

  it.each([
    ['', /unknown scheme/], // nothing
    ['127.0.0.1:8461', /unknown scheme/], // no scheme
    ['inet:127.0.0.1:8461', /unknown scheme/], // Postfix's spelling is not ours
    ['udp:127.0.0.1:8461', /unknown scheme/],
    ['tcp:127.0.0.1', /missing ":PORT"/],
    ['tcp::8461', /empty host/],
    ['tcp:::1:8461', /IPv6 addresses must be in brackets/],
    ['tcp:[::1]', /missing ":PORT"/],
    ['tcp:[::1:8461', /missing "\]"/],
    ['tcp:[example.com]:8461', /not an IPv6 address/],
    ['tcp:127.0.0.1:65536', /bad port/],
    ['tcp:127.0.0.1:-1', /bad port/],
    ['tcp:127.0.0.1:84a', /bad port/],
    ['tcp:127.0.0.1:', /bad port/],
    ['tcp:bad_host:8461', /bad host/],
    ['unix:', /empty path/],
    ['unix:relative.sock', /must be absolute/],
    [`unix:/${'d'.repeat(120)}`, /longer than 107 bytes/],
  ])('refuses %j, naming it', (spec, why) => {
    expect(() => parseListenSpec(spec)).toThrow(why);
    expect(() => parseListenSpec(spec)).toThrow(`"${spec}"`);
  });
});

// ---------- requests and replies ----------

describe('socketmap requests over TCP', () => {
  it('answers several requests on one connection, one at a time', async () => {
    const { address } = await serve(echo);
    const c = await Client.connect(address);
    expect(await c.ask('postfix example.com')).toBe('OK postfix|example.com');
    expect(await c.ask('postfix [mx.example.net]:25')).toBe('OK postfix|[mx.example.net]:25');
    expect(await c.ask('zone2 bücher.example')).toBe('OK zone2|bücher.example');
    expect(c.isClosed).toBe(false);
  });

  it('passes everything after the first space to the handler as the key', async () => {
    const { address } = await serve(echo);
    const c = await Client.connect(address);
    expect(await c.ask('postfix a b')).toBe('OK postfix|a b');
  });

  it('answers pipelined requests in request order when lookups finish out of order', async () => {
    const { handler, calls } = heldHandler();
    const { address } = await serve(handler);
    const c = await Client.connect(address);
    c.send('postfix one.example', 'postfix two.example', 'postfix three.example');
    await until(() => calls.length === 3, 'three lookups');
    expect(calls.map((x) => x.key)).toEqual(['one.example', 'two.example', 'three.example']);
    calls[2]?.resolve('OK three');
    calls[0]?.resolve('OK one');
    expect(await c.reply()).toBe('OK one');
    calls[1]?.resolve('OK two');
    expect(await c.reply()).toBe('OK two');
    expect(await c.reply()).toBe('OK three');
    expect(c.replies).toEqual(['OK one', 'OK two', 'OK three']);
  });

  it('answers every request of a client that half-closes after sending them', async () => {
    const { handler, calls } = heldHandler();
    const { address } = await serve(handler);
    const c = await Client.connect(address);
    c.send('postfix a.example', 'postfix b.example');
    c.socket.end();
    await until(() => calls.length === 2, 'two lookups');
    calls[1]?.resolve('NOTFOUND ');
    calls[0]?.resolve('OK a');
    await within(c.closed, 'close');
    expect(c.replies).toEqual(['OK a', 'NOTFOUND ']);
  });

  it.each([
    ['example.com', 'PERM request is not "name key"'], // no name
    [' example.com', 'PERM empty map name'],
    ['postfix ', 'PERM empty key'],
    ['postfix', 'PERM request is not "name key"'],
    ['', 'PERM request is not "name key"'], // 0:, is a valid netstring but not a request
    ['postfix exa\x00mple.com', 'PERM request contains control characters'],
    ['postfix example.com\r\n', 'PERM request contains control characters'],
    ['post\tfix example.com', 'PERM request contains control characters'],
    ['postfix example.com\x7f', 'PERM request contains control characters'],
    [Buffer.from([0x70, 0x20, 0xff, 0xfe]), 'PERM request is not valid UTF-8'],
    [Buffer.from('postfix \xc3(', 'latin1'), 'PERM request is not valid UTF-8'], // truncated sequence
  ])('answers the bad request %j with PERM and keeps the connection', async (payload, want) => {
    let lookups = 0;
    const { address } = await serve(async (name, key) => {
      lookups += 1;
      return echo(name, key);
    });
    const c = await Client.connect(address);
    expect(await c.ask(payload)).toBe(want);
    expect(await c.ask('postfix example.com')).toBe('OK postfix|example.com');
    expect(lookups).toBe(1);
  });

  it('warns about the first bad request of a connection only', async () => {
    const { address, logs } = await serve(echo);
    const c = await Client.connect(address);
    for (let i = 0; i < 5; i++) expect(await c.ask('nospace')).toMatch(/^PERM /);
    const bad = logs.filter((l) => l.msg === 'bad socketmap request');
    expect(bad).toHaveLength(5);
    expect(bad.filter((l) => l.level === LEVEL.warn)).toHaveLength(1);
    expect(bad[0]?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('answers TEMP when the handler rejects or throws, and keeps the connection', async () => {
    const handler: SocketmapHandler = (_name, key) => {
      if (key === 'throws.example') throw new Error('boom');
      if (key === 'rejects.example') return Promise.reject(new Error('bang'));
      return echo('postfix', key);
    };
    const { address, logs } = await serve(handler);
    const c = await Client.connect(address);
    expect(await c.ask('postfix rejects.example')).toBe('TEMP lookup failed');
    expect(await c.ask('postfix throws.example')).toBe('TEMP lookup failed');
    expect(await c.ask('postfix ok.example')).toBe('OK postfix|ok.example');
    expect(logs.filter((l) => l.level === LEVEL.error)).toHaveLength(2);
  });

  it('replaces a reply longer than socketmap_max_reply_size with PERM, and passes one at the limit', async () => {
    const atLimit = 'OK ' + 'x'.repeat(SOCKETMAP.MAX_REPLY_BYTES - 3);
    const handler: SocketmapHandler = async (_name, key) => (key === 'big.example' ? atLimit + 'x' : atLimit);
    const { address } = await serve(handler);
    const c = await Client.connect(address);
    expect(await c.ask('postfix big.example')).toMatch(/^PERM reply longer than 100000 bytes/);
    const ok = await c.ask('postfix fits.example');
    expect(Buffer.byteLength(ok)).toBe(SOCKETMAP.MAX_REPLY_BYTES);
  });

  it('counts reply size in bytes, not characters', async () => {
    // 50 001 two-byte characters: 100 002 bytes, 50 001 characters.
    const { address } = await serve(async () => 'OK ' + 'é'.repeat(50_000));
    const c = await Client.connect(address);
    expect(await c.ask('postfix example.com')).toMatch(/^PERM /);
  });

  it('starts at most maxPipelinedRequests lookups, and the rest as replies drain', async () => {
    const { handler, calls } = heldHandler();
    const { address } = await serve(handler, { maxPipelinedRequests: 4 });
    const c = await Client.connect(address);
    c.send(...Array.from({ length: 10 }, (_, i) => `postfix d${i}.example`));
    await until(() => calls.length === 4, 'four lookups');
    // Behaviour under test: a stretch with nothing to wait for, in which the server must not start more.
    await delay(50);
    expect(calls).toHaveLength(4);
    calls[1]?.resolve('OK d1'); // not at the head: nothing can be written, no slot frees
    await delay(50); // again a stretch in which nothing may happen
    expect(calls).toHaveLength(4);
    expect(c.replies).toEqual([]);
    calls[0]?.resolve('OK d0'); // d0 and d1 written: two more start
    await until(() => calls.length === 6, 'six lookups');
    for (let i = 2; i < 10; i++) {
      await until(() => calls.length > i, `lookup ${i}`);
      calls[i]?.resolve(`OK d${i}`);
    }
    await until(() => c.replies.length === 10, 'ten replies');
    expect(c.replies).toEqual(Array.from({ length: 10 }, (_, i) => `OK d${i}`));
  });
  it('stops taking requests while the client does not read its replies', async () => {
    const big = 'OK ' + 'x'.repeat(SOCKETMAP.MAX_REPLY_BYTES - 3);
    let lookups = 0;
    const { address } = await serve(async () => {
      lookups += 1;
      return big;
    });
    const c = await Client.connect(address);
    c.socket.pause();
    // 40 MB of replies: far more than loopback socket buffers hold.
    const total = 400;
    c.send(...Array.from({ length: total }, (_, i) => `postfix d${i}.example`));
    // What is tested is that the lookups stop: poll (bounded, 2 s) until a 50 ms stretch adds none.
    let seen = -1;
    for (let i = 0; i < 40 && lookups !== seen; i++) {
      seen = lookups;
      await delay(50);
    }
    expect(lookups).toBe(seen); // settled
    expect(lookups).toBeLessThan(total);
    c.socket.resume();
    await until(() => c.replies.length === total, 'all replies');
    expect(lookups).toBe(total);
  });
});

// ---------- framing errors ----------

describe('socketmap framing errors', () => {
  it.each([
    ['abc', 'bad-length'], // not a netstring at all
    ['01:a,', 'bad-length'], // leading zero
    [':postfix example.com,', 'bad-length'], // empty length
    ['19:postfix example.com;', 'bad-terminator'],
    ['5:postfix example.com,', 'bad-terminator'], // length too short
    ['1025:', 'too-long'], // one over max_request_bytes
    ['999999999999:', 'too-long'], // refused from the digits, with no payload sent
  ])('answers %j with one PERM, closes, and logs once', async (wire, code) => {
    const { address, logs } = await serve(echo);
    const c = await Client.connect(address);
    c.sendRaw(wire);
    expect(await c.reply()).toMatch(/^PERM netstring /);
    await within(c.closed, 'close');
    expect(c.replies).toHaveLength(1);
    const logged = warnings(logs, /framing error/);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ code, peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(logged[0]?.reason).toBeTruthy();
  });

  it('logs a flood of garbage once, not per byte', async () => {
    const { address, logs } = await serve(echo);
    const c = await Client.connect(address);
    c.sendRaw(Buffer.alloc(64 * 1024, 'x'));
    c.sendRaw(Buffer.alloc(64 * 1024, 'y'));
    await within(c.closed, 'close');
    expect(c.replies).toHaveLength(1);
    expect(logs.filter((l) => l.level >= LEVEL.warn)).toHaveLength(1);
  });

  it('answers the requests before a framing error, then PERM, then closes', async () => {
    const { address } = await serve(echo);
    const c = await Client.connect(address);
    c.sendRaw(Buffer.concat([encodeNetstring('postfix a.example'), encodeNetstring('postfix b.example')]));
    c.sendRaw('3:abc;');
    await within(c.closed, 'close');
    expect(c.replies).toEqual(['OK postfix|a.example', 'OK postfix|b.example', expect.stringMatching(/^PERM /)]);
  });

  it('keeps other connections working while one sends garbage', async () => {
    const { address } = await serve(echo);
    const bad = await Client.connect(address);
    const partial = await Client.connect(address);
    const steady = await Client.connect(address);
    expect(await steady.ask('postfix before.example')).toBe('OK postfix|before.example');
    const partialWire = encodeNetstring('postfix partial.example');
    partial.sendRaw(partialWire.subarray(0, 10)); // a request in progress across the garbage
    bad.sendRaw('garbage garbage garbage');
    await within(bad.closed, 'close of the bad connection');
    expect(await steady.ask('postfix after.example')).toBe('OK postfix|after.example');
    partial.sendRaw(partialWire.subarray(10));
    expect(await partial.reply()).toBe('OK postfix|partial.example');
    const fresh = await Client.connect(address);
    expect(await fresh.ask('postfix fresh.example')).toBe('OK postfix|fresh.example');
  });
});

// ---------- timeouts ----------

// The delays below are the behaviour under test (a quiet client, a trickling request, a slow lookup),
// not synchronisation.
describe('socketmap timeouts', () => {
  const SHORT_MS = 200;

  it('closes a connection that stays idle for idleTimeoutMs', async () => {
    const { address } = await serve(echo, { idleTimeoutMs: SHORT_MS });
    const c = await Client.connect(address);
    expect(await c.ask('postfix example.com')).toBe('OK postfix|example.com');
    const start = Date.now();
    await within(c.closed, 'idle close');
    expect(Date.now() - start).toBeGreaterThanOrEqual(SHORT_MS - 20);
  });

  it('restarts the idle timer with every request, answered by the handler or refused', async () => {
    const { address } = await serve(echo, { idleTimeoutMs: SHORT_MS });
    const c = await Client.connect(address);
    const start = Date.now();
    for (let i = 0; i < 4; i++) {
      await delay(SHORT_MS / 2);
      // Alternate lookups with bad requests, which are answered without waiting on the handler.
      if (i % 2 === 0) expect(await c.ask(`postfix d${i}.example`)).toBe(`OK postfix|d${i}.example`);
      else expect(await c.ask('bad')).toMatch(/^PERM /);
    }
    expect(c.isClosed).toBe(false);
    expect(Date.now() - start).toBeGreaterThan(SHORT_MS); // the connection outlived one idle period
    await within(c.closed, 'idle close');
  });

  it('closes a connection whose request stays incomplete for requestTimeoutMs', async () => {
    const { address, logs } = await serve(echo, { requestTimeoutMs: SHORT_MS, idleTimeoutMs: 10_000 });
    const c = await Client.connect(address);
    const start = Date.now();
    c.sendRaw('19:postfix exam');
    await within(c.closed, 'request-timeout close');
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(SHORT_MS - 20);
    expect(elapsed).toBeLessThan(WAIT_MS);
    expect(c.replies).toEqual([]);
    expect(warnings(logs, /request incomplete/)).toHaveLength(1);
  });

  it('does not count more bytes of a slow request as progress', async () => {
    const { address } = await serve(echo, { requestTimeoutMs: SHORT_MS, idleTimeoutMs: 10_000 });
    const c = await Client.connect(address);
    const wire = encodeNetstring('postfix trickle.example');
    // One byte per SHORT_MS / 4: the whole request would take about 6 timeouts' worth of time.
    let sent = 0;
    for (; sent < wire.length && !c.isClosed; sent++) {
      c.sendRaw(wire.subarray(sent, sent + 1));
      await delay(SHORT_MS / 4);
    }
    await within(c.closed, 'request-timeout close');
    expect(sent).toBeLessThan(wire.length / 2);
    expect(c.replies).toEqual([]);
  });

  it('does not treat a slow lookup as an incomplete request', async () => {
    const slow: SocketmapHandler = async (name, key) => {
      await delay(SHORT_MS * 2);
      return echo(name, key);
    };
    const { address } = await serve(slow, { requestTimeoutMs: SHORT_MS, idleTimeoutMs: SHORT_MS });
    const c = await Client.connect(address);
    expect(await c.ask('postfix slow.example')).toBe('OK postfix|slow.example');
  });
});

// ---------- connection limit ----------

describe('socketmap connection limit', () => {
  it('closes connections beyond maxConnections at once, logs it once, and accepts again when one leaves', async () => {
    const { address, listeners, logs } = await serve(echo, { maxConnections: 2 });
    const a = await Client.connect(address);
    const b = await Client.connect(address);
    expect(await a.ask('postfix a.example')).toBe('OK postfix|a.example');
    expect(await b.ask('postfix b.example')).toBe('OK postfix|b.example');
    const refused = await Promise.all([1, 2, 3].map(() => Client.connect(address)));
    for (const r of refused) {
      r.send('postfix refused.example');
      await within(r.closed, 'refused connection close');
      expect(r.replies).toEqual([]);
    }
    expect(warnings(logs, /connection limit/)).toHaveLength(1);
    expect(listeners.connectionCount).toBe(2);

    a.socket.end();
    await until(() => listeners.connectionCount === 1, 'the server to see a leave');
    const c = await Client.connect(address);
    expect(await c.ask('postfix c.example')).toBe('OK postfix|c.example');
    expect(await b.ask('postfix b2.example')).toBe('OK postfix|b2.example');
  });

  it('survives a client that resets while its lookup is pending', async () => {
    const { handler, calls } = heldHandler();
    const { address, listeners, logs } = await serve(handler);
    const c = await Client.connect(address);
    c.send('postfix reset.example');
    await until(() => calls.length === 1, 'lookup');
    c.socket.resetAndDestroy();
    await until(() => listeners.connectionCount === 0, 'the server to drop the connection');
    calls[0]?.resolve('OK late');
    const d = await Client.connect(address);
    d.send('postfix next.example');
    await until(() => calls.length === 2, 'second lookup');
    calls[1]?.resolve('OK next');
    expect(await d.reply()).toBe('OK next');
    expect(logs.filter((l) => l.level >= LEVEL.warn)).toEqual([]);
  });
});

// ---------- unix sockets ----------

describe('socketmap over a unix socket', () => {
  it('serves requests, applies the default mode 0660, and removes the file on close', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'socketmap.sock');
    const { address, listeners, logs } = await serve(echo, {}, [`unix:${file}`]);
    expect(address).toEqual({ kind: 'unix', spec: `unix:${file}`, path: file });
    const st = await stat(file);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    const c = await Client.connect(address);
    expect(await c.ask('postfix example.com')).toBe('OK postfix|example.com');
    expect(await c.ask('bad')).toMatch(/^PERM /);
    expect(logs.find((l) => l.msg === 'bad socketmap request')?.peer).toBe('unix');
    await listeners.close();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    await within(c.closed, 'close');
  });

  it('applies a configured mode', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'private.sock');
    await serve(echo, { unixMode: 0o600 }, [`unix:${file}`]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('replaces a stale socket file left by a process that died', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'stale.sock');
    const script = `require('net').createServer().listen(process.argv[1], () => console.log('ready'))`;
    const child = spawn(process.execPath, ['-e', script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    await within(new Promise((resolve) => child.stdout.once('data', resolve)), 'child listening');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL'); // no chance to unlink: the socket file stays behind
    await within(exited, 'child exit');
    expect((await stat(file)).isSocket()).toBe(true);

    const { address } = await serve(echo, {}, [`unix:${file}`]);
    const c = await Client.connect(address);
    expect(await c.ask('postfix example.com')).toBe('OK postfix|example.com');
  });

  it('refuses a socket file another process is accepting on, and leaves it alone', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'live.sock');
    const other = net.createServer((s) => s.on('error', () => {}).end('mine'));
    await new Promise<void>((resolve) => other.listen(file, resolve));
    cleanups.push(() => new Promise<void>((resolve) => other.close(() => resolve())));

    await expect(serve(echo, {}, [`unix:${file}`])).rejects.toThrow(`listen unix:${file}: ${file} is in use`);
    const probe = net.connect({ path: file });
    const got = await within(
      new Promise<string>((resolve) => probe.once('data', (d: Buffer) => resolve(d.toString()))),
      'the other server',
    );
    probe.destroy();
    expect(got).toBe('mine');
  });

  it('refuses to remove a regular file at the socket path', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'precious.txt');
    await writeFile(file, 'keep me');
    await expect(serve(echo, {}, [`unix:${file}`])).rejects.toThrow(/exists and is not a socket/);
    expect(await readFile(file, 'utf8')).toBe('keep me');
  });

  it('closes listeners already bound when a later spec fails', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'first.sock');
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => busy.close(() => resolve())));
    const busyPort = (busy.address() as net.AddressInfo).port;

    await expect(serve(echo, {}, [`unix:${file}`, `tcp:127.0.0.1:${busyPort}`])).rejects.toThrow(
      `listen tcp:127.0.0.1:${busyPort}:`,
    );
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects an invalid spec, naming it', async () => {
    await expect(serve(echo, {}, ['udp:127.0.0.1:8461'])).rejects.toThrow('"udp:127.0.0.1:8461"');
  });
});

// ---------- close ----------

describe('closing the listeners', () => {
  it('ends idle connections, writes replies still owed, then refuses new connections', async () => {
    const { handler, calls } = heldHandler();
    const { address, listeners } = await serve(handler);
    const idle = await Client.connect(address);
    const busy = await Client.connect(address);
    busy.send('postfix owed.example');
    await until(() => calls.length === 1, 'lookup');

    let done = false;
    const closing = listeners.close().then(() => {
      done = true;
    });
    await within(idle.closed, 'idle connection close');
    expect(busy.isClosed).toBe(false);
    expect(done).toBe(false);
    calls[0]?.resolve('OK owed');
    await within(busy.closed, 'busy connection close');
    expect(busy.replies).toEqual(['OK owed']);
    await within(closing, 'close()');
    await expect(Client.connect(address)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('cuts connections that outlast the grace period', async () => {
    const { handler, calls } = heldHandler(); // never settled
    const { address, listeners } = await serve(handler, { shutdownGraceMs: 200 });
    const c = await Client.connect(address);
    c.send('postfix never.example');
    await until(() => calls.length === 1, 'lookup');
    const start = Date.now();
    await within(listeners.close(), 'close()');
    expect(Date.now() - start).toBeGreaterThanOrEqual(180);
    await within(c.closed, 'client close');
    expect(c.replies).toEqual([]);
  });

  it('can be called twice', async () => {
    const { listeners } = await serve(echo);
    const first = listeners.close();
    expect(listeners.close()).toBe(first);
    await first;
  });
});
