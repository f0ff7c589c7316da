/**
 * The Exim line protocol, one question per connection, shaped for Exim's `${readsocket}` expansion
 * (Exim spec, chapter "String expansions", item readsocket): Exim connects, writes the request, shuts
 * down its sending side, and reads until end of file. So: one request line in (ended by LF, CRLF, or the
 * peer's half-close), one reply line out, then we close.
 *
 *   policy DOMAIN
 *   mx DOMAIN MXHOST
 *
 * Words are separated by spaces or tabs; the verb is case-insensitive. Exim never sends a second line,
 * so one arriving before the reply is written is an error (a line end smuggled into a request must not
 * turn its first part into a question of its own). Every failure (bad request, request too long,
 * timeout, lookup error) gets one `error="..."` line from src/answer/exim.ts and the connection closes;
 * nothing a peer sends can end the process or touch another connection.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { eximErrorReply } from '../../answer/exim.js';
import { DEFAULTS } from '../../config/defaults.js';
import type { ConnectionControl, ListenerOptions } from '../listen.js';

export type EximRequest = { verb: 'policy'; domain: string } | { verb: 'mx'; domain: string; host: string };

/** Returns the reply line (newline-terminated) for one well-formed request; `log` names the peer. */
export type EximHandler = (request: EximRequest, log: Logger) => Promise<string>;

export interface EximConnectionOptions {
  /** Largest request line in bytes, without its line end; more is an error. */
  maxRequestBytes: number;
  /** The whole request line must arrive within this, from accept. */
  requestTimeoutMs: number;
}

/** Everything the Exim server needs: config `exim.*` in camelCase. */
export interface EximServerOptions extends ListenerOptions, EximConnectionOptions {}

/** DEFAULTS.exim with the caller's values on top. */
export function eximServerOptions(overrides: Partial<EximServerOptions> = {}): EximServerOptions {
  const d = DEFAULTS.exim;
  return {
    maxRequestBytes: d.max_request_bytes,
    maxConnections: d.max_connections,
    requestTimeoutMs: d.request_timeout_ms,
    unixMode: d.unix_mode,
    ...overrides,
  };
}

/** After our reply, how long the peer has to close its side before the socket is destroyed. */
const CLOSE_LINGER_MS = 2_000;
const LF = 0x0a;
const CR = 0x0d;
const QUIET_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses one request line (LF or CRLF already removed). Domain and host are passed on as given; the
 * handler normalises them. Returns a short reason for anything else.
 */
export function parseEximRequest(raw: Buffer): EximRequest | { error: string } {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { error: 'request is not valid UTF-8' };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) return { error: 'request contains control characters' };
  const words = text.split(/[ \t]+/).filter((w) => w !== '');
  if (words.length === 0) return { error: 'empty request' };
  const verb = words[0]!.toLowerCase();
  if (verb === 'policy') {
    if (words.length !== 2) return { error: 'usage: policy DOMAIN' };
    return { verb, domain: words[1]! };
  }
  if (verb === 'mx') {
    if (words.length !== 3) return { error: 'usage: mx DOMAIN MXHOST' };
    return { verb, domain: words[1]!, host: words[2]! };
  }
  return { error: `unknown request ${JSON.stringify(words[0]!.slice(0, 40))} (expected policy or mx)` };
}

/** Serves one connection: read a line, answer it, close. Never throws. */
export function serveEximConnection(
  socket: Socket,
  handler: EximHandler,
  options: EximConnectionOptions,
  logger: Logger,
): ConnectionControl {
  const session = new Session(socket, handler, options, logger.child({ peer: peerLabel(socket) }));
  return { shutdown: () => session.shutdown() };
}

class Session {
  private chunks: Buffer[] = [];
  private received = 0;
  /** The request line is complete (or refused): later input is read and dropped. */
  private gotRequest = false;
  /** A reply has been written, or the connection is being closed without one. */
  private done = false;
  /** Input arrived after the request line while its lookup ran. */
  private moreInput = false;
  private readonly requestTimer: NodeJS.Timeout;
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly handler: EximHandler,
    private readonly options: EximConnectionOptions,
    private readonly log: Logger,
  ) {
    // Exim half-closes after its request and reads our reply afterwards, so our side must stay writable.
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.onError(err));
    socket.on('close', () => this.onClose());
    this.requestTimer = setTimeout(() => this.onTimeout(), options.requestTimeoutMs);
  }

  /** Daemon shutdown: a connection still waiting for its request closes now; a lookup finishes first. */
  shutdown(): void {
    if (this.gotRequest || this.done) return;
    this.gotRequest = true;
    this.finish(undefined);
  }

  private onData(chunk: Buffer): void {
    // Input after the request is still read, then dropped: closing with unread data sends a reset,
    // which can destroy the reply before the peer reads it.
    if (this.gotRequest) {
      if (!this.done && chunk.length > 0) this.moreInput = true;
      return;
    }
    const lf = chunk.indexOf(LF);
    const part = lf < 0 ? chunk : chunk.subarray(0, lf);
    this.chunks.push(part);
    this.received += part.length;
    if (lf >= 0) {
      if (lf + 1 < chunk.length) this.refuse('more than one request line');
      else this.request();
      return;
    }
    // Stop buffering as soon as the line cannot fit (one byte more for a CR before the LF).
    if (this.received > this.options.maxRequestBytes + 1) {
      this.refuse(`request longer than ${this.options.maxRequestBytes} bytes`);
    }
  }

  /** End of input: a request without line end is complete (Exim sends none; it half-closes). */
  private onEnd(): void {
    if (!this.gotRequest) this.request();
  }

  private request(): void {
    this.gotRequest = true;
    clearTimeout(this.requestTimer);
    let raw = Buffer.concat(this.chunks);
    this.chunks = [];
    if (raw.at(-1) === CR) raw = raw.subarray(0, -1);
    if (raw.length > this.options.maxRequestBytes) {
      this.refuse(`request longer than ${this.options.maxRequestBytes} bytes`);
      return;
    }
    const request = parseEximRequest(raw);
    if ('error' in request) {
      this.refuse(request.error);
      return;
    }
    let answer: Promise<string>;
    try {
      answer = Promise.resolve(this.handler(request, this.log));
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (reply) => this.finish(this.moreInput ? eximErrorReply('more than one request line') : reply),
      (err: unknown) => {
        this.log.error({ err, request }, 'exim lookup failed');
        this.finish(eximErrorReply('lookup failed'));
      },
    );
  }

  private refuse(reason: string): void {
    this.gotRequest = true;
    clearTimeout(this.requestTimer);
    this.chunks = [];
    this.log.warn({ reason }, 'bad exim request');
    this.finish(eximErrorReply(reason));
  }

  private onTimeout(): void {
    if (this.gotRequest) return;
    this.log.warn({ timeoutMs: this.options.requestTimeoutMs }, 'exim request incomplete; closing connection');
    this.refuse('request timeout');
  }

  /** Writes the reply (if any), ends our side, and gives the peer CLOSE_LINGER_MS to close its side. */
  private finish(reply: string | undefined): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.requestTimer);
    if (this.socket.destroyed) return;
    if (reply === undefined) this.socket.end();
    else this.socket.end(reply);
    this.socket.resume();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
  }

  private onError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && QUIET_SOCKET_ERRORS.has(code)) this.log.debug({ code }, 'exim peer went away');
    else this.log.warn({ err }, 'exim connection error');
  }

  private onClose(): void {
    this.done = true;
    this.gotRequest = true;
    clearTimeout(this.requestTimer);
    clearTimeout(this.lingerTimer);
    this.chunks = [];
  }
}

/** `host:port` for TCP (IPv6 in brackets), `unix` for a unix socket, whose peers have no address. */
function peerLabel(socket: Socket): string {
  const address = socket.remoteAddress;
  if (address === undefined) return 'unix';
  return net.isIPv6(address) ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
}
