/**
 * The Exim line protocol over real loopback sockets (TCP on 127.0.0.1 port 0, unix sockets in a temporary
 * directory), with a stub resolver: what Exim's ${readsocket} does (write, half-close, read to EOF) and
 * what other clients might do wrong.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../src/cache/store.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import { eximLookupHandler } from '../../src/server/exim/lookup.js';
import { eximServerOptions, serveEximConnection, type EximServerOptions } from '../../src/server/exim/session.js';
import { startListeners, type Listeners } from '../../src/server/listen.js';
import type { Policy } from '../../src/sts/types.js';
import { waitFor } from '../lab/wait.js';

const WAIT_MS = 3_000;
const silent = pino({ level: 'silent' });

const ENFORCE: Policy = {
  version: 'STSv1',
  mode: 'enforce',
  maxAge: 86400,
  mx: [
    { wildcard: false, domain: 'mx1.enforce.example' },
    { wildcard: true, domain: 'relay.example' },
  ],
  extensions: [],
};

/** A resolver stand-in: answers from a table, records every domain it was asked about. */
class StubResolver implements PolicyLookup {
  readonly asked: string[] = [];
  /** Lookups wait for this before answering, when set. */
  gate: Promise<void> | undefined;
  fail = false;

  async lookup(domain: string): Promise<LookupResult> {
    this.asked.push(domain);
    if (this.gate) await this.gate;
    if (this.fail) throw new Error('store exploded');
    if (domain === 'enforce.example') {
      const entry = { domain, id: 'id1', policy: ENFORCE, text: '' } as CacheEntry;
      return { kind: 'policy', domain, entry, source: 'memory' };
    }
    return { kind: 'none', domain, why: 'no-record' };
  }

  /** Resolves once a lookup of `domain` has started (it may be held at the gate). */
  started(domain: string): Promise<void> {
    return waitFor(() => this.asked.includes(domain), `the lookup of ${domain} to start`);
  }
}

/** What the server side of one connection has seen so far: for waiting on it, never for steering it. */
interface ServerSide {
  received: number;
  ended: boolean;
  closed: boolean;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function serve(options: Partial<EximServerOptions> = {}, specs = ['tcp:127.0.0.1:0']) {
  const resolver = new StubResolver();
  const opts = eximServerOptions(options);
  const handler = eximLookupHandler(resolver);
  const accepted: ServerSide[] = [];
  const onConnection = (socket: net.Socket) => {
    const control = serveEximConnection(socket, handler, opts, silent);
    // Registered after the session's own listeners: when these run, the session has handled the event.
    const side: ServerSide = { received: 0, ended: false, closed: false };
    accepted.push(side);
    socket.on('data', (b: Buffer) => (side.received += b.length));
    socket.on('end', () => (side.ended = true));
    socket.on('close', () => (side.closed = true));
    return control;
  };
  const listeners: Listeners = await startListeners(specs, onConnection, opts, silent);
  cleanups.push(() => listeners.close());
  const first = listeners.addresses[0]!;
  const where: net.NetConnectOpts = first.kind === 'tcp' ? { host: '127.0.0.1', port: first.port } : { path: first.path };
  /** Resolves once the server side of connection `i` (in accept order) satisfies `cond`. */
  const server = (i: number, cond: (side: ServerSide) => boolean, what: string) =>
    waitFor(() => accepted[i] !== undefined && cond(accepted[i]), `server side of connection ${i}: ${what}`);
  return { resolver, listeners, where, server };
}

interface Exchange {
  /** Everything the server sent before it closed. */
  reply: string;
  /** Whether the server closed without the client ending first. */
  serverClosed: boolean;
}

/**
 * One exchange: connect, send `chunks` (a function means: wait for what it waits for), half-close when
 * `halfClose`, and read until the server closes. Fails the test if the server keeps the connection open.
 */
function exchange(where: net.NetConnectOpts, chunks: Array<string | Buffer | (() => Promise<void>)>, halfClose: boolean): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(where);
    let reply = '';
    let ended = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server did not close; got ${JSON.stringify(reply)}`));
    }, WAIT_MS);
    socket.on('data', (b: Buffer) => (reply += b.toString('utf8')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply, serverClosed: !ended });
    });
    socket.once('connect', async () => {
      for (const c of chunks) {
        if (typeof c === 'function') await c();
        else if (!socket.destroyed) socket.write(c);
      }
      if (halfClose && !socket.destroyed) {
        ended = true;
        socket.end();
      }
    });
  });
}

/** What Exim's ${readsocket} does: write the request, shut down the sending side, read to EOF. */
const readsocket = (where: net.NetConnectOpts, request: string) => exchange(where, [request], true);

describe('Exim protocol: requests and replies', () => {
  it('policy: one reply line to a request ended by half-close, as ${readsocket} sends it', async () => {
    const { where } = await serve();
    const r = await readsocket(where, 'policy enforce.example');
    expect(r.reply).toBe('mode=enforce mx="mx1.enforce.example *.relay.example" id=id1 max_age=86400\n');
  });

  it('a request ended by LF is answered and the server closes without waiting for the client', async () => {
    const { where } = await serve();
    const r = await exchange(where, ['policy plain.example\n'], false);
    expect(r).toEqual({ reply: 'mode=none reason=no-record\n', serverClosed: true });
  });

  it('CRLF line ends are accepted', async () => {
    const { where } = await serve();
    expect((await exchange(where, ['mx enforce.example mx1.enforce.example\r\n'], false)).reply).toBe(
      'allowed=yes mode=enforce mx="mx1.enforce.example *.relay.example"\n',
    );
  });

  it.each<[string, string]>([
    ['a.relay.example', 'yes'],
    ['a.b.relay.example', 'no'],
    ['relay.example', 'no'],
    ['MX1.ENFORCE.EXAMPLE.', 'yes'],
    ['elsewhere.example', 'no'],
  ])('mx enforce.example %s: allowed=%s (RFC 8461 §4.1)', async (host, allowed) => {
    const { where } = await serve();
    expect((await readsocket(where, `mx enforce.example ${host}`)).reply).toMatch(new RegExp(`^allowed=${allowed} mode=enforce `));
  });

  it('domains are normalised before the lookup: case, trailing dot, tabs between words, verb case', async () => {
    const { where, resolver } = await serve();
    expect((await readsocket(where, 'POLICY\t ENFORCE.Example.')).reply).toMatch(/^mode=enforce /);
    expect(resolver.asked).toEqual(['enforce.example']);
  });

  it('a request split over several packets is put together', async () => {
    const { where, server } = await serve();
    // Each piece is read by the server before the next is sent: four reads, one request.
    const read = (n: number) => () => server(0, (s) => s.received === n, `${n} bytes read`);
    const r = await exchange(where, ['pol', read(3), 'icy enf', read(10), 'orce.example', read(22), '\n'], false);
    expect(r.reply).toMatch(/^mode=enforce /);
  });

  it('address literals and single labels have no policy, without a lookup', async () => {
    const { where, resolver } = await serve();
    expect((await readsocket(where, 'policy [192.0.2.1]')).reply).toBe('mode=none reason=address-literal\n');
    expect((await readsocket(where, 'mx localhost mx.example.com')).reply).toBe('allowed=yes mode=none reason=single-label\n');
    expect(resolver.asked).toEqual([]);
  });

  // A domain that is no host name is an answer with its reason class, never error= (the contrib router
  // defers on error=, and only a valid enforce policy may stop a delivery: issue 13).
  it.each<[string, string]>([
    ['policy foo_bar.example.com', 'mode=none reason=not-a-hostname\n'],
    ['policy bad_name!.example', 'mode=none reason=not-a-hostname\n'],
    ['mx foo_bar.example.com mx.example.com', 'allowed=yes mode=none reason=not-a-hostname\n'],
    [`policy ${'a'.repeat(64)}.example`, 'mode=none reason=too-long\n'],
  ])('%j -> %j, without a lookup', async (request, want) => {
    const { where, resolver } = await serve();
    expect((await readsocket(where, request)).reply).toBe(want);
    expect(resolver.asked).toEqual([]);
  });

  it('an MX name that is no host name matches no pattern: refused under a policy, not an error', async () => {
    const { where } = await serve();
    expect((await readsocket(where, 'mx enforce.example mx_1.example')).reply).toMatch(/^allowed=no mode=enforce /);
    expect((await readsocket(where, 'mx plain.example mx_1.example')).reply).toBe('allowed=yes mode=none reason=no-record\n');
  });

  it('a second line in the same packet is an error, without a lookup', async () => {
    const { where, resolver } = await serve();
    const r = await readsocket(where, 'mx enforce.example mx1.enforce.example\nevil.example');
    expect(r.reply).toBe('error="more than one request line"\n');
    expect(resolver.asked).toEqual([]);
  });

  it('a second line arriving while the lookup runs turns the answer into an error', async () => {
    const { where, resolver, server } = await serve();
    let open!: () => void;
    resolver.gate = new Promise((r) => (open = r));
    const lines = ['policy plain.example\n', 'policy enforce.example\n'];
    const pending = exchange(where, [lines[0]!, () => resolver.started('plain.example'), lines[1]!], true);
    const all = lines.join('').length;
    await server(0, (s) => s.received === all && s.ended, 'the second line and the half-close read during the lookup');
    open();
    expect((await pending).reply).toBe('error="more than one request line"\n');
    expect(resolver.asked).toEqual(['plain.example']);
  });

  it('connections are independent: 40 at once each get their own answer', async () => {
    const { where } = await serve();
    const hosts = Array.from({ length: 40 }, (_, i) => (i % 2 ? `h${i}.relay.example` : `h${i}.other.example`));
    const replies = await Promise.all(hosts.map((h) => readsocket(where, `mx enforce.example ${h}`)));
    replies.forEach((r, i) => expect(r.reply.startsWith(i % 2 ? 'allowed=yes' : 'allowed=no')).toBe(true));
  });

  it('the unix socket listener answers the same and has the configured mode', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'exim-sock-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'exim.sock');
    const { where } = await serve({ unixMode: 0o640 }, [`unix:${file}`]);
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect((await readsocket(where, 'policy enforce.example')).reply).toMatch(/^mode=enforce /);
  });
});

describe('Exim protocol: bad requests get one error line and the connection closes', () => {
  it.each<[string, string | Buffer, RegExp]>([
    ['unknown verb', 'route enforce.example', /^error="unknown request \\"route\\" \(expected policy or mx\)"\n$/],
    ['policy without a domain', 'policy', /^error="usage: policy DOMAIN"\n$/],
    ['policy with two domains', 'policy a.example b.example', /^error="usage: policy DOMAIN"\n$/],
    ['mx without a host', 'mx enforce.example', /^error="usage: mx DOMAIN MXHOST"\n$/],
    ['empty line', '\n', /^error="empty request"\n$/],
    ['nothing at all before EOF', '', /^error="empty request"\n$/],
    ['control characters', 'policy a\x01b.example', /^error="request contains control characters"\n$/],
    ['not UTF-8', Buffer.from([0x70, 0x6f, 0x6c, 0x69, 0x63, 0x79, 0x20, 0xff, 0xfe]), /^error="request is not valid UTF-8"\n$/],
  ])('%s', async (_rule, request, want) => {
    const { where, resolver } = await serve();
    const r = await exchange(where, [request], true);
    expect(r.reply).toMatch(want);
    expect(r.reply.split('\n')).toHaveLength(2);
    expect(resolver.asked).toEqual([]);
  });

  it('a line longer than the limit is refused as soon as it cannot fit, without waiting for its end', async () => {
    const { where } = await serve({ maxRequestBytes: 64 });
    const r = await exchange(where, [`policy ${'a'.repeat(100)}`], false);
    expect(r).toEqual({ reply: 'error="request longer than 64 bytes"\n', serverClosed: true });
  });

  it('a line of exactly the limit is accepted, CR not counted', async () => {
    const { where } = await serve({ maxRequestBytes: 64 });
    const domain = `${'a'.repeat(64 - 'policy '.length - '.example'.length)}.example`;
    expect(`policy ${domain}`).toHaveLength(64);
    expect((await exchange(where, [`policy ${domain}\r\n`], false)).reply).toBe('mode=none reason=no-record\n');
  });

  it('a request that does not arrive in time gets an error and the connection closes', async () => {
    const { where } = await serve({ requestTimeoutMs: 150 });
    const started = Date.now();
    const r = await exchange(where, ['policy enf'], false);
    expect(r).toEqual({ reply: 'error="request timeout"\n', serverClosed: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('a failing lookup gets an error reply, and the next connection is served', async () => {
    const { where, resolver } = await serve();
    resolver.fail = true;
    expect((await readsocket(where, 'policy enforce.example')).reply).toBe('error="lookup failed"\n');
    resolver.fail = false;
    expect((await readsocket(where, 'policy enforce.example')).reply).toMatch(/^mode=enforce /);
  });

  it('a peer that resets while its lookup runs harms nobody else', async () => {
    const { where, resolver, server } = await serve();
    let open!: () => void;
    resolver.gate = new Promise((r) => (open = r));
    const rude = net.connect(where);
    rude.on('error', () => {});
    await new Promise((r) => rude.once('connect', r));
    rude.write('policy enforce.example\n');
    await resolver.started('enforce.example');
    const polite = readsocket(where, 'policy plain.example');
    await resolver.started('plain.example');
    rude.resetAndDestroy();
    await server(0, (s) => s.closed, 'the reset seen');
    open();
    expect((await polite).reply).toBe('mode=none reason=no-record\n');
  });
});

describe('Exim protocol: shutdown', () => {
  it('close() answers a lookup in progress, then stops', async () => {
    const { where, resolver, listeners } = await serve();
    let open!: () => void;
    resolver.gate = new Promise((r) => (open = r));
    const pending = readsocket(where, 'policy enforce.example');
    await resolver.started('enforce.example');
    const closed = listeners.close();
    open();
    expect((await pending).reply).toMatch(/^mode=enforce /);
    await closed;
  });

  it('close() ends a connection that has not sent its request, without a reply', async () => {
    const { where, listeners, server } = await serve();
    const waiting = exchange(where, [], false);
    await server(0, () => true, 'accepted');
    await listeners.close();
    expect(await waiting).toEqual({ reply: '', serverClosed: true });
  });
});
