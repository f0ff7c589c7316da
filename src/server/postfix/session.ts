/**
 * One Postfix socketmap(5) connection: netstring requests `name <space> key` in, one netstring reply per
 * request out, in request order. Postfix keeps the connection open and asks one question at a time; other
 * clients may pipeline, so replies are queued and written strictly in order even when a later lookup
 * finishes first.
 *
 * What the replies say is not decided here: the handler returns the reply payload, and every error reply
 * is written through src/answer/postfix.ts.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { permReply, tempReply } from '../../answer/postfix.js';
import { DEFAULTS, SOCKETMAP } from '../../config/defaults.js';
import type { ConnectionControl, ListenerOptions } from '../listen.js';
import { NetstringDecoder, NetstringError } from './netstring.js';

/**
 * Returns the reply payload (`OK ...`, `NOTFOUND `, ...) for one lookup: the string itself when the answer
 * is known at once (a cached policy), which is then written without a trip through the promise queue,
 * else a promise of it.
 */
export type SocketmapHandler = (name: string, key: string) => string | Promise<string>;

/** Requests read but not yet answered, per connection. Beyond this we stop reading until replies drain. */
export const MAX_PIPELINED_REQUESTS = 64;
/** After we end a connection, how long the peer has to close its side before the socket is destroyed. */
const CLOSE_LINGER_MS = 2_000;
/** socketmap(5) REQUEST FORMAT: `name <space> key`. */
const NAME_KEY_SEPARATOR = ' ';
/** Error codes of a peer going away: routine for a daemon, so they are not warnings. */
const QUIET_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED']);

export interface SocketmapConnectionOptions {
  /** Largest request payload (`name key`) in bytes; a longer netstring is a framing error. */
  maxRequestBytes: number;
  /** A connection with no request in progress is closed after this long. */
  idleTimeoutMs: number;
  /** A request whose first byte has arrived must be complete within this. */
  requestTimeoutMs: number;
  /** Default MAX_PIPELINED_REQUESTS. */
  maxPipelinedRequests?: number;
  /**
   * Longest reply payload (config socketmap.max_reply_bytes = Postfix's socketmap_max_reply); default
   * SOCKETMAP.MAX_REPLY_BYTES. The map handler already keeps its replies within it; this is the last guard.
   */
  maxReplyBytes?: number;
}

/** Everything the socketmap server needs: config `socketmap.*` in camelCase. */
export interface SocketmapServerOptions extends ListenerOptions, SocketmapConnectionOptions {}

/** DEFAULTS.socketmap with the caller's values on top. */
export function socketmapServerOptions(overrides: Partial<SocketmapServerOptions> = {}): SocketmapServerOptions {
  const d = DEFAULTS.socketmap;
  return {
    maxRequestBytes: d.max_request_bytes,
    maxConnections: d.max_connections,
    idleTimeoutMs: d.idle_timeout_ms,
    requestTimeoutMs: d.request_timeout_ms,
    unixMode: d.unix_mode,
    maxPipelinedRequests: MAX_PIPELINED_REQUESTS,
    ...overrides,
  };
}

export type SocketmapRequest = { name: string; key: string } | { error: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits a request payload into map name and key. The name selects a zone, the key is a domain (or
 * `[host]:port`) from smtp_tls_policy_maps; neither can legitimately be empty, hold control bytes or be
 * invalid UTF-8, so those are refused before the handler sees them.
 */
export function parseSocketmapRequest(payload: Buffer): SocketmapRequest {
  // What Postfix sends is printable ASCII: one pass over the bytes finds the separator and rules out
  // control bytes and non-ASCII, which take the general path below. Same answers, without a decode.
  const n = payload.length;
  let sep = -1;
  let i = 0;
  for (; i < n; i++) {
    const b = payload[i]!;
    if (b > 0x20 && b < 0x7f) continue;
    if (b !== 0x20) break;
    if (sep < 0) sep = i;
  }
  if (i === n) {
    if (sep < 0) return { error: 'request is not "name key"' };
    if (sep === 0) return { error: 'empty map name' };
    if (sep === n - 1) return { error: 'empty key' };
    return { name: payload.toString('latin1', 0, sep), key: payload.toString('latin1', sep + 1, n) };
  }
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { error: 'request is not valid UTF-8' };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) return { error: 'request contains control characters' };
  const space = text.indexOf(NAME_KEY_SEPARATOR);
  if (space < 0) return { error: 'request is not "name key"' };
  if (space === 0) return { error: 'empty map name' };
  const key = text.slice(space + 1);
  if (key === '') return { error: 'empty key' };
  return { name: text.slice(0, space), key };
}

/**
 * Serves socketmap requests on `socket` until the peer leaves, a timeout fires, or shutdown() is called.
 * Never throws and never lets a socket error escape: bad input costs at most this one connection.
 */
export function serveSocketmapConnection(
  socket: Socket,
  handler: SocketmapHandler,
  options: SocketmapConnectionOptions,
  logger: Logger,
): ConnectionControl {
  const session = new Session(socket, handler, options, logger.child({ peer: peerLabel(socket) }));
  return { shutdown: () => session.shutdown() };
}

/** A request's place in the reply order; `reply` is set when its answer is known. */
interface Slot {
  reply: string | undefined;
}

/**
 * A received request not yet started (its payload), or, as a string, the PERM that ends the stream after
 * a framing error.
 */
type Backlogged = Buffer | string;

/** The framed form of the reply written last, reused while replies repeat (cached answers do). */
let lastReply = '';
let lastFrame = '0:,';

/** `<len>:<reply>,` as one string (written as UTF-8, so `<len>` counts UTF-8 bytes). */
function frame(reply: string, bytes: number): string {
  if (reply === lastReply) return lastFrame;
  lastReply = reply;
  lastFrame = `${bytes}:${reply},`;
  return lastFrame;
}

class Session {
  private readonly decoder: NetstringDecoder;
  private readonly maxPipelined: number;
  /** Started requests in arrival order, while the first of them is unanswered; replies leave from the front. */
  private readonly replies: Slot[] = [];
  /** Complete requests waiting for a pipeline slot. At most one socket chunk beyond the cap. */
  private readonly backlog: Backlogged[] = [];
  /** Payloads decoded from the current chunk (reused). */
  private readonly decoded: Buffer[] = [];
  /** No further requests are read; the connection ends once the owed replies are written. */
  private ending = false;
  private ended = false;
  private closed = false;
  /** Reading paused by us (pipeline full or peer not reading replies), not by the peer. */
  private throttled = false;
  private badRequests = 0;
  private requestTimer: NodeJS.Timeout | undefined;
  /**
   * The idle timer is armed once and re-armed when it fires early, rather than cleared and set around
   * every request: `idleSince` (performance.now()) is when the connection last became idle, or -1 while
   * something is in progress.
   */
  private idleTimer: NodeJS.Timeout | undefined;
  private idleSince = -1;
  private lingerTimer: NodeJS.Timeout | undefined;
  private pumpQueued = false;
  private readonly queuedPump = (): void => {
    this.pumpQueued = false;
    this.pump();
  };

  constructor(
    private readonly socket: Socket,
    private readonly handler: SocketmapHandler,
    private readonly options: SocketmapConnectionOptions,
    private readonly log: Logger,
  ) {
    this.decoder = new NetstringDecoder({ maxPayloadBytes: options.maxRequestBytes });
    this.maxPipelined = Math.max(1, options.maxPipelinedRequests ?? MAX_PIPELINED_REQUESTS);
    // A client may send its requests and then half-close (`printf ... | nc`); it is still owed the
    // replies, so our side ends only after writing them (Duplex allows this before 'end' is emitted).
    socket.allowHalfOpen = true;
    // Replies are small and latency-bound; Nagle would hold back pipelined replies (a no-op on unix).
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.pump());
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.onError(err));
    socket.on('close', () => this.onClose());
    this.armTimers();
  }

  shutdown(): void {
    if (this.closed) return;
    this.ending = true;
    this.pump();
  }

  private onData(chunk: Buffer): void {
    // After the last request, input is read and dropped: closing with unread data would send a reset,
    // which can destroy the PERM reply before the peer reads it.
    if (this.ending) return;
    this.idleSince = -1;
    const decoded = this.decoded;
    try {
      this.decoder.decodeInto(chunk, decoded);
    } catch (err) {
      if (!(err instanceof NetstringError)) throw err;
      // One line per connection: the decoder is dead after its first error, and the connection ends.
      this.log.warn({ code: err.code, reason: err.message }, 'socketmap framing error; closing connection');
      for (const payload of decoded) this.backlog.push(payload);
      decoded.length = 0;
      this.backlog.push(permReply(err.message));
      this.ending = true;
      this.clearRequestTimer();
      this.pump();
      return;
    }
    if (decoded.length > 0) {
      this.clearRequestTimer();
      for (const payload of decoded) this.backlog.push(payload);
      decoded.length = 0;
    }
    this.pump();
  }

  private onEnd(): void {
    if (this.decoder.midFrame && !this.ending) this.log.debug('peer closed in the middle of a request');
    this.ending = true;
    this.pump();
  }

  private onError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && QUIET_SOCKET_ERRORS.has(code)) this.log.debug({ code }, 'socketmap peer went away');
    else this.log.warn({ err }, 'socketmap connection error');
  }

  private onClose(): void {
    this.closed = true;
    this.clearRequestTimer();
    this.clearIdleTimer();
    clearTimeout(this.lingerTimer);
    this.replies.length = 0;
    this.backlog.length = 0;
  }

  /**
   * Writes every reply that is next in order, starts backlogged requests while the pipeline has room,
   * then adjusts reading and timers. Called after anything changes; each pass consumes the backlog.
   * Replies known at once (cached answers) are written in the same pass; all replies of one pass leave in
   * one write.
   */
  private pump(): void {
    if (this.closed || this.ended || this.socket.destroyed) return;
    let out = '';
    for (;;) {
      const replies = this.replies;
      while (replies.length > 0 && replies[0]!.reply !== undefined) out += this.framed(replies.shift()!.reply!);
      // Written in pieces of at most about the high-water mark, so that writableNeedDrain still stops a
      // peer that does not read.
      if (out.length >= this.socket.writableHighWaterMark) {
        this.socket.write(out);
        out = '';
      }
      // A peer that does not read its replies gets no new lookups: at most one pipeline of replies waits
      // in our write buffer.
      if (replies.length >= this.maxPipelined || this.socket.writableNeedDrain) break;
      const next = this.backlog.shift();
      if (next === undefined) break;
      if (typeof next === 'string') {
        replies.push({ reply: next });
        continue;
      }
      const reply = this.start(next);
      if (reply === undefined) continue;
      // Answered at once: in order only behind replies still owed.
      if (replies.length === 0) out += this.framed(reply);
      else replies.push({ reply });
    }
    if (out !== '') this.socket.write(out);
    if (this.ending && this.replies.length === 0 && this.backlog.length === 0) {
      this.end();
      return;
    }
    this.throttle();
    this.armTimers();
  }

  /**
   * Starts one request. Returns its reply when the handler answered at once; otherwise its slot waits in
   * `replies` for the answer.
   */
  private start(payload: Buffer): string | undefined {
    const request = parseSocketmapRequest(payload);
    if ('error' in request) {
      this.badRequests += 1;
      // The first bad request of a connection is worth a warning; a client repeating it is not news.
      const level = this.badRequests === 1 ? 'warn' : 'debug';
      this.log[level]({ reason: request.error }, 'bad socketmap request');
      return permReply(request.error);
    }
    let answer: string | Promise<string>;
    try {
      answer = this.handler(request.name, request.key);
    } catch (err) {
      return this.handlerFailed(err, request);
    }
    if (typeof answer === 'string') return answer;
    const slot: Slot = { reply: undefined };
    this.replies.push(slot);
    Promise.resolve(answer).then(
      (reply) => this.onAnswer(slot, reply),
      (err: unknown) => this.onAnswer(slot, this.handlerFailed(err, request)),
    );
    return undefined;
  }

  private onAnswer(slot: Slot, reply: string): void {
    slot.reply = reply;
    // The only request in progress (Postfix's way): its answer leaves now.
    if (this.replies.length === 1 && this.backlog.length === 0 && !this.pumpQueued) {
      this.pump();
      return;
    }
    // Answers that settle in the same turn of the promise queue (a pipelined client's) leave in one write.
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    process.nextTick(this.queuedPump);
  }

  private handlerFailed(err: unknown, request: { name: string; key: string }): string {
    this.log.error({ err, name: request.name, key: request.key }, 'socketmap handler failed');
    return tempReply('lookup failed');
  }

  /**
   * The netstring frame of a reply. socketmap(5) PROTOCOL LIMITS: Postfix rejects replies over
   * socketmap_max_reply_size bytes, so a longer one becomes a PERM.
   */
  private framed(reply: string): string {
    if (reply === lastReply) return lastFrame;
    let bytes = Buffer.byteLength(reply);
    const limit = this.options.maxReplyBytes ?? SOCKETMAP.MAX_REPLY_BYTES;
    if (bytes > limit) {
      this.log.warn({ bytes, limit }, 'socketmap reply too long');
      reply = permReply(`reply longer than ${limit} bytes`);
      bytes = Buffer.byteLength(reply);
    }
    return frame(reply, bytes);
  }

  /** Stops reading while the pipeline is full or the peer is not reading its replies. */
  private throttle(): void {
    const full =
      this.replies.length + this.backlog.length >= this.maxPipelined || this.socket.writableNeedDrain;
    if (full && !this.ending && !this.throttled) {
      this.throttled = true;
      this.socket.pause();
    } else if ((!full || this.ending) && this.throttled) {
      this.throttled = false;
      this.socket.resume();
    }
  }

  /**
   * The request timer runs while a frame is partly received and we are reading; the idle timer while
   * nothing at all is in progress. A request we are slow to read (throttled) is not the peer's fault.
   */
  private armTimers(): void {
    if (this.ending) {
      this.clearRequestTimer();
      this.clearIdleTimer();
      return;
    }
    const midFrame = this.decoder.midFrame;
    if (midFrame && !this.throttled) {
      this.requestTimer ??= setTimeout(() => this.onRequestTimeout(), this.options.requestTimeoutMs);
    } else if (this.requestTimer !== undefined) {
      this.clearRequestTimer();
    }
    const idle = !midFrame && this.replies.length === 0 && this.backlog.length === 0;
    if (!idle) {
      this.idleSince = -1;
    } else if (this.idleSince < 0) {
      this.idleSince = performance.now();
      this.idleTimer ??= setTimeout(() => this.onIdleTimer(), this.options.idleTimeoutMs);
    }
  }

  private onRequestTimeout(): void {
    this.requestTimer = undefined;
    this.log.warn({ timeoutMs: this.options.requestTimeoutMs }, 'socketmap request incomplete; closing connection');
    this.ending = true;
    this.pump();
  }

  /** Closes the connection once it has been idle for idleTimeoutMs; otherwise waits for the rest of it. */
  private onIdleTimer(): void {
    this.idleTimer = undefined;
    if (this.ending || this.closed) return;
    const timeout = this.options.idleTimeoutMs;
    const idleFor = this.idleSince < 0 ? -1 : performance.now() - this.idleSince;
    if (idleFor < 0 || idleFor < timeout) {
      // Busy now (re-checked a full period from now), or idle for less than the timeout so far.
      const wait = idleFor < 0 ? timeout : Math.max(1, Math.ceil(timeout - idleFor));
      this.idleTimer = setTimeout(() => this.onIdleTimer(), wait);
      return;
    }
    this.log.debug({ timeoutMs: timeout }, 'socketmap connection idle; closing');
    this.ending = true;
    this.pump();
  }

  /** Ends our side after the last reply; the peer gets CLOSE_LINGER_MS to close its side. */
  private end(): void {
    this.ended = true;
    this.clearRequestTimer();
    this.clearIdleTimer();
    this.socket.end();
    this.socket.resume();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
  }

  private clearRequestTimer(): void {
    clearTimeout(this.requestTimer);
    this.requestTimer = undefined;
  }

  private clearIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.idleSince = -1;
  }
}

/** `host:port` for TCP (IPv6 in brackets), `unix` for a unix socket, whose peers have no address. */
function peerLabel(socket: Socket): string {
  const address = socket.remoteAddress;
  if (address === undefined) return 'unix';
  return net.isIPv6(address) ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
}
