/**
 * A receiving SMTP server for test worlds: real SMTP over TCP, STARTTLS with a certificate the test
 * chooses (or none offered), and a record of every message with how it arrived (TLS or not, TLS version,
 * SNI). Enough of RFC 5321 for Postfix, Exim and a STARTTLS probe; not a general mail server.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import type { KeyAndCert } from './ca.js';

export interface ReceivedMessage {
  from: string;
  to: string[];
  data: string;
  tls: boolean;
  tlsVersion: string | null;
  sni: string | null;
  at: number;
}

export interface SmtpSession {
  tls: boolean;
  sni: string | null;
  tlsVersion: string | null;
  at: number;
}

export interface SmtpServerOptions {
  address: string;
  /** Default 25. 0 = any free port (read `port` afterwards). */
  port?: number;
  /** Certificate for STARTTLS; null = STARTTLS not offered. */
  cert: KeyAndCert | null;
  /** Name in the banner and EHLO reply. */
  hostname?: string;
  /** TLS versions accepted after STARTTLS. Default TLS 1.2 to 1.3. */
  minTlsVersion?: 'TLSv1' | 'TLSv1.2';
  /** Highest TLS version; 'TLSv1.1' makes a legacy server (TLS 1.0/1.1 only, OpenSSL SECLEVEL=0). */
  maxTlsVersion?: 'TLSv1.1' | 'TLSv1.3';
  /**
   * 'close' (default): QUIT gets 221 and the connection closes (RFC 5321 §4.1.1.10). 'hold': a hostile
   * server that answers 221 and then keeps the connection open for ever, even after the client's FIN.
   */
  quit?: 'close' | 'hold';
  /**
   * Announce REQUIRETLS (RFC 8689 §2) in the EHLO reply after STARTTLS (only there: §4.1, the option is
   * used only over TLS). MAIL FROM's parameters, REQUIRETLS among them, are kept in `from` as sent.
   */
  requireTls?: boolean;
}

export interface SmtpServer {
  readonly address: string;
  readonly port: number;
  messages(): ReceivedMessage[];
  /** Every connection, with whether and how it switched to TLS. */
  sessions(): SmtpSession[];
  /** Connections the client has not closed yet (no FIN or reset seen from it). */
  openConnections(): number;
  /** Connections whose server side is still open (with quit 'hold', also after the client left). */
  heldConnections(): number;
  /** Resolves with the first message matching `pred`, or rejects after `timeoutMs`. */
  waitForMessage(pred: (m: ReceivedMessage) => boolean, timeoutMs: number): Promise<ReceivedMessage>;
  stop(): Promise<void>;
}

const MAX_LINE_BYTES = 4096;
const MAX_MESSAGE_BYTES = 1024 * 1024;
const POLL_MS = 50;

export async function startSmtpServer(opts: SmtpServerOptions): Promise<SmtpServer> {
  const hostname = opts.hostname ?? 'mx.lab.test';
  const context: SecureContext | null = opts.cert
    ? createSecureContext({
        key: opts.cert.keyPem,
        cert: opts.cert.certPem,
        ...(opts.maxTlsVersion === 'TLSv1.1'
          ? { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }
          : { minVersion: opts.minTlsVersion ?? 'TLSv1.2' }),
      })
    : null;
  const messages: ReceivedMessage[] = [];
  const sessions: SmtpSession[] = [];
  const sockets = new Set<Socket>();
  const clientOpen = new Set<Socket>();

  // 'hold' keeps our side open after the client's FIN (no automatic end), like a server that never closes.
  const server: Server = createServer({ allowHalfOpen: opts.quit === 'hold' }, (raw) => {
    sockets.add(raw);
    clientOpen.add(raw);
    raw.on('close', () => {
      sockets.delete(raw);
      clientOpen.delete(raw);
    });
    // The client's FIN: with quit 'hold' our side stays open, but the client is gone.
    raw.on('end', () => clientOpen.delete(raw));
    raw.on('error', () => {});
    const session: SmtpSession = { tls: false, sni: null, tlsVersion: null, at: Date.now() };
    sessions.push(session);
    serve(raw, session);
  });

  function serve(initial: Socket, session: SmtpSession): void {
    let sock: Socket = initial;
    let buffer = Buffer.alloc(0);
    let from = '';
    let to: string[] = [];
    let data: string[] | null = null;
    let dataBytes = 0;
    const reply = (line: string) => sock.write(`${line}\r\n`);

    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let nl = buffer.indexOf('\r\n'); nl >= 0; nl = buffer.indexOf('\r\n')) {
        const line = buffer.subarray(0, nl).toString('latin1');
        buffer = buffer.subarray(nl + 2);
        if (handle(line) === 'switched') return;
      }
      if (buffer.length > MAX_LINE_BYTES && data === null) {
        reply('500 line too long');
        sock.destroy();
      }
    };

    const handle = (line: string): 'switched' | void => {
      if (data !== null) {
        if (line === '.') {
          messages.push({ from, to, data: data.join('\r\n'), tls: session.tls, tlsVersion: session.tlsVersion, sni: session.sni, at: Date.now() });
          data = null;
          from = '';
          to = [];
          reply('250 2.0.0 queued');
        } else {
          dataBytes += line.length + 2;
          if (dataBytes > MAX_MESSAGE_BYTES) {
            reply('552 too big');
            sock.destroy();
            return;
          }
          data.push(line.startsWith('..') ? line.slice(1) : line);
        }
        return;
      }
      const verb = line.split(' ')[0]!.toUpperCase();
      switch (verb) {
        case 'EHLO': {
          const caps = [hostname, 'PIPELINING', 'SIZE 10240000', '8BITMIME'];
          if (context && !session.tls) caps.push('STARTTLS');
          if (opts.requireTls && session.tls) caps.push('REQUIRETLS');
          caps.forEach((c, i) => reply(`250${i === caps.length - 1 ? ' ' : '-'}${c}`));
          return;
        }
        case 'HELO':
          return void reply(`250 ${hostname}`);
        case 'STARTTLS': {
          if (!context || session.tls) return void reply('502 5.5.1 STARTTLS not available');
          reply('220 2.0.0 ready to start TLS');
          sock.removeListener('data', onData);
          // RFC 3207 §4.2: anything the client sent after STARTTLS in clear is discarded.
          buffer = Buffer.alloc(0);
          // Inherits allowHalfOpen from the socket it wraps ('hold').
          const secure = new TLSSocket(sock, { isServer: true, secureContext: context });
          secure.on('error', () => sock.destroy());
          // Once TLS owns the connection, the client's FIN shows on the TLS socket.
          secure.on('end', () => clientOpen.delete(initial));
          secure.on('close', () => clientOpen.delete(initial));
          secure.once('secure', () => {
            session.tls = true;
            session.tlsVersion = secure.getProtocol() ?? null;
            session.sni = (secure as TLSSocket & { servername?: string | false }).servername || null;
          });
          sock = secure;
          from = '';
          to = [];
          sock.on('data', onData);
          return 'switched';
        }
        case 'MAIL':
          from = line.replace(/^MAIL FROM:\s*/i, '');
          to = [];
          return void reply('250 2.1.0 ok');
        case 'RCPT':
          if (!from) return void reply('503 5.5.1 need MAIL');
          to.push(line.replace(/^RCPT TO:\s*/i, ''));
          return void reply('250 2.1.5 ok');
        case 'DATA':
          if (to.length === 0) return void reply('503 5.5.1 need RCPT');
          data = [];
          dataBytes = 0;
          return void reply('354 end with .');
        case 'RSET':
          from = '';
          to = [];
          return void reply('250 2.0.0 ok');
        case 'NOOP':
          return void reply('250 2.0.0 ok');
        case 'QUIT':
          reply('221 2.0.0 bye');
          if (opts.quit !== 'hold') sock.end();
          return;
        default:
          return void reply('502 5.5.2 command not recognized');
      }
    };

    sock.on('data', onData);
    reply(`220 ${hostname} ESMTP lab`);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 25, opts.address, () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    address: opts.address,
    port,
    messages: () => [...messages],
    sessions: () => [...sessions],
    openConnections: () => clientOpen.size,
    heldConnections: () => sockets.size,
    async waitForMessage(pred, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find(pred);
        if (found) return found;
        if (Date.now() >= deadline) throw new Error(`no matching message within ${timeoutMs} ms (${messages.length} received)`);
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
