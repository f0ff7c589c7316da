/**
 * One STARTTLS probe of one MX address, for `check`: connect to port 25, read the greeting, EHLO, look
 * for STARTTLS (RFC 3207), upgrade, record what a sender applying RFC 8461 §4.2 would judge — the chain,
 * the names, the validity dates, the TLS version — and QUIT. It judges nothing itself (src/check does)
 * and never throws: every outcome, including timeouts, is a value.
 *
 * The handshake accepts any certificate and TLS 1.0 upwards on purpose: the point is to see and report
 * what the server offers, not to deliver mail over it.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates, type PeerCertificate, type TLSSocket } from 'node:tls';
import { certificateDnsIds } from './identity.js';

/** RFC 5321 §4.5.4.2 / RFC 8461 §4: MTA-STS protects SMTP to the MX on the standard port. */
export const SMTP_PORT = 25;
/** A reply longer than this (all lines together) is not an SMTP server we want to keep reading. */
const MAX_REPLY_BYTES = 16 * 1024;
/** After QUIT, wait this long for "221" before closing anyway. */
const QUIT_WAIT_MS = 1_000;

export interface StartTlsProbeOptions {
  /** Extra trusted roots (PEM), added to the system roots (`fetch.ca_file`). */
  extraCaPem: string | null;
  /** Deadline for the whole conversation, connect to QUIT. */
  timeoutMs: number;
  /** The name we give in EHLO. */
  ehloName: string;
}

export type ProbeStage = 'connect' | 'banner' | 'ehlo' | 'starttls' | 'handshake';

export interface CertificateFacts {
  subject: string;
  issuer: string;
  /** subjectAltName DNS-IDs, as written. */
  dnsNames: string[];
  /** ISO 8601. */
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

export type StartTlsProbe =
  | { kind: 'connect-failed'; error: string }
  | { kind: 'timeout'; stage: ProbeStage }
  | { kind: 'broken'; stage: ProbeStage; error: string }
  /** A reply other than the one that lets the conversation go on (e.g. "554" greeting, "454" to STARTTLS). */
  | { kind: 'refused'; stage: 'banner' | 'ehlo' | 'starttls'; reply: string }
  | { kind: 'no-starttls'; extensions: string[] }
  | { kind: 'tls-failed'; error: string }
  | {
      kind: 'tls';
      /** `TLSv1.3`, `TLSv1.2`, ... */
      protocol: string | null;
      cipher: string | null;
      /**
       * The chain verifies against the trusted roots. The name is not judged here: src/check applies the
       * one identity rule (src/net/identity.ts) to `certificate.dnsNames`.
       */
      authorized: boolean;
      authorizationError: string | null;
      certificate: CertificateFacts | null;
    };

export type StartTlsProber = (mxHost: string, address: string) => Promise<StartTlsProbe>;

export function createStartTlsProber(options: StartTlsProbeOptions): StartTlsProber {
  const ca = options.extraCaPem ? [...rootCertificates, options.extraCaPem] : [...rootCertificates];
  return (mxHost, address) => probe(mxHost, address, ca, options);
}

function probe(mxHost: string, address: string, ca: string[], options: StartTlsProbeOptions): Promise<StartTlsProbe> {
  return new Promise<StartTlsProbe>((resolve) => {
    let stage: ProbeStage = 'connect';
    let settled = false;
    let plain: Socket | null = null;
    let secure: TLSSocket | null = null;
    const replies = new ReplyReader();

    const finish = (result: StartTlsProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(result);
    };
    const abort = (result: StartTlsProbe) => {
      finish(result);
      secure?.destroy();
      plain?.destroy();
    };
    const deadline = setTimeout(() => abort({ kind: 'timeout', stage }), options.timeoutMs);

    /** Sends QUIT, waits briefly for 221, then closes; the probe result is already settled. */
    const quit = (sock: Socket | TLSSocket, reader: ReplyReader) => {
      const timer = setTimeout(() => sock.destroy(), QUIT_WAIT_MS);
      reader.next().then(
        () => {
          clearTimeout(timer);
          sock.end();
        },
        () => {
          clearTimeout(timer);
          sock.destroy();
        },
      );
      sock.write('QUIT\r\n');
    };

    plain = netConnect({ host: address, port: SMTP_PORT });
    plain.setNoDelay(true);
    plain.on('error', (err: NodeJS.ErrnoException) => {
      const error = err.code ?? err.message;
      if (stage === 'connect') abort({ kind: 'connect-failed', error });
      else if (stage !== 'handshake') abort({ kind: 'broken', stage, error });
      // During the handshake the TLS socket reports the failure.
    });
    plain.on('data', (chunk: Buffer) => replies.push(chunk));
    plain.on('close', () => replies.close('connection closed'));

    plain.once('connect', async () => {
      const sock = plain!;
      try {
        // RFC 5321 §4.3.1: the greeting is 220; 554 means "no SMTP service here".
        stage = 'banner';
        const banner = await replies.next();
        if (banner.code !== 220) {
          finish({ kind: 'refused', stage: 'banner', reply: banner.text });
          quit(sock, replies);
          return;
        }
        // RFC 3207 §4: STARTTLS is an ESMTP extension, so it is only ever advertised in reply to EHLO.
        stage = 'ehlo';
        sock.write(`EHLO ${options.ehloName}\r\n`);
        const ehlo = await replies.next();
        if (ehlo.code !== 250) {
          finish({ kind: 'refused', stage: 'ehlo', reply: ehlo.text });
          quit(sock, replies);
          return;
        }
        const extensions = ehlo.lines.slice(1).map((l) => l.split(' ')[0]!.toUpperCase());
        if (!extensions.includes('STARTTLS')) {
          finish({ kind: 'no-starttls', extensions });
          quit(sock, replies);
          return;
        }
        stage = 'starttls';
        sock.write('STARTTLS\r\n');
        const ready = await replies.next();
        // RFC 3207 §4: 220 "Ready to start TLS"; anything else (454 TLS not available) means no TLS.
        if (ready.code !== 220) {
          finish({ kind: 'refused', stage: 'starttls', reply: ready.text });
          quit(sock, replies);
          return;
        }
        stage = 'handshake';
        sock.removeAllListeners('data');
        secure = tlsConnect({
          socket: sock,
          servername: mxHost,
          ca,
          // Reported as facts (`authorized`, the DNS-IDs) and judged by src/check, so that one probe reports
          // every problem.
          rejectUnauthorized: false,
          checkServerIdentity: () => undefined,
          // Accept what old servers offer, so that TLS 1.0/1.1 is reported as such, not as a handshake failure.
          minVersion: 'TLSv1',
          ciphers: 'DEFAULT@SECLEVEL=0',
        });
        secure.on('error', (err: NodeJS.ErrnoException) => {
          if (stage === 'handshake') abort({ kind: 'tls-failed', error: err.code ?? err.message });
        });
        secure.once('close', () => {
          if (stage === 'handshake') abort({ kind: 'tls-failed', error: 'connection closed during the handshake' });
        });
        secure.once('secureConnect', () => {
          const tls = secure!;
          stage = 'ehlo';
          const peer = tls.getPeerCertificate(false);
          const certificate = peer && Object.keys(peer).length > 0 ? certificateFacts(peer) : null;
          finish({
            kind: 'tls',
            protocol: tls.getProtocol(),
            cipher: tls.getCipher()?.name ?? null,
            authorized: tls.authorized,
            authorizationError: tls.authorizationError ? String(tls.authorizationError) : null,
            certificate,
          });
          // RFC 5321 §4.1.1.10: QUIT may be sent at any time; over TLS it goes in the new session.
          const tlsReplies = new ReplyReader();
          tls.on('data', (chunk: Buffer) => tlsReplies.push(chunk));
          tls.on('close', () => tlsReplies.close('connection closed'));
          quit(tls, tlsReplies);
        });
      } catch (err) {
        abort({ kind: 'broken', stage, error: (err as Error).message });
      }
    });
  });
}

function certificateFacts(cert: PeerCertificate): CertificateFacts {
  return {
    subject: nameText(cert.subject),
    issuer: nameText(cert.issuer),
    dnsNames: certificateDnsIds(cert),
    validFrom: isoDate(cert.valid_from),
    validTo: isoDate(cert.valid_to),
    fingerprint256: cert.fingerprint256,
  };
}

function nameText(name: PeerCertificate['subject'] | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
    .join(', ');
}

function isoDate(text: string): string {
  const t = Date.parse(text);
  return Number.isNaN(t) ? text : new Date(t).toISOString();
}

interface Reply {
  code: number;
  lines: string[];
  text: string;
}

/**
 * RFC 5321 §4.2: a reply is one or more lines "ddd-text" ending with a line "ddd text" (or bare "ddd").
 * Replies are handed out in order; a reply over MAX_REPLY_BYTES or a closed connection rejects.
 */
class ReplyReader {
  private buffer = '';
  private lines: string[] = [];
  private ready: Reply[] = [];
  private waiting: Array<{ resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  private closed: string | null = null;

  push(chunk: Buffer): void {
    // latin1: every byte maps to one character, so a hostile byte never breaks decoding; control
    // characters (terminal escapes) never leave this reader.
    this.buffer += chunk.toString('latin1').replace(/[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]/g, '?');
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        const reply: Reply = { code: Number(line.slice(0, 3)) || 0, lines: this.lines.map((l) => l.slice(4)), text: this.lines.join(' | ') };
        this.lines = [];
        const waiter = this.waiting.shift();
        if (waiter) waiter.resolve(reply);
        else this.ready.push(reply);
      }
    }
    const pending = this.buffer.length + this.lines.reduce((n, l) => n + l.length + 2, 0);
    if (pending > MAX_REPLY_BYTES) this.close(`reply longer than ${MAX_REPLY_BYTES} bytes`);
  }

  close(why: string): void {
    if (this.closed !== null) return;
    this.closed = why;
    for (const w of this.waiting.splice(0)) w.reject(new Error(why));
  }

  next(): Promise<Reply> {
    const reply = this.ready.shift();
    if (reply) return Promise.resolve(reply);
    if (this.closed !== null) return Promise.reject(new Error(this.closed));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
}
