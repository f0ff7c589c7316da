/**
 * One STARTTLS probe of one MX address, for `check`: connect to port 25, read the greeting, EHLO, look
 * for STARTTLS (RFC 3207), upgrade, record what a sender applying RFC 8461 §4.2 would judge — the chain,
 * the names, the validity dates, the TLS version — and QUIT. It judges nothing itself (src/check does)
 * and never throws: every outcome, including timeouts, is a value.
 *
 * Bounded whatever the server does: the promise resolves only once the connection is closed, at the
 * latest at `timeoutMs` (QUIT included), and what the server sends is read under SMTP_REPLY_LIMITS
 * (./smtp-reply.ts): a flood ends the conversation with a reason naming the limit.
 *
 * The handshake accepts any certificate and TLS 1.0 upwards on purpose: the point is to see and report
 * what the server offers, not to deliver mail over it.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates, type DetailedPeerCertificate, type PeerCertificate, type TLSSocket } from 'node:tls';
import { certificateDnsIds } from './identity.js';
import { ReplyReader } from './smtp-reply.js';

/** RFC 5321 §4.5.4.2 / RFC 8461 §4: MTA-STS protects SMTP to the MX on the standard port. */
export const SMTP_PORT = 25;
/** After QUIT, wait this long for "221" before closing anyway (never past the probe's deadline). */
const QUIT_WAIT_MS = 1_000;
/** After the deadline destroyed the sockets, resolve at the latest this much later even if no 'close' came. */
const CLOSE_GRACE_MS = 1_000;

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
  /**
   * The chain as presented, leaf first, each certificate DER-encoded: `check` matches TLSA records
   * against it (RFC 6698 §2.1). Bounded by what one TLS handshake carries.
   */
  chainDer?: Buffer[];
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
    /** The first outcome known wins; it is handed out once the connection is gone. */
    let result: StartTlsProbe | null = null;
    let secure: TLSSocket | null = null;
    let released = false;

    // Every byte read, before and after STARTTLS, counts against the reader's limits; a flood ends the
    // conversation at once, without QUIT.
    const overflow = (why: string) => abort({ kind: 'broken', stage, error: why });
    const replies = new ReplyReader(overflow);

    /** The promise resolves only when no socket of this probe is left: a long-lived caller leaks nothing. */
    const release = () => {
      if (released || result === null) return;
      released = true;
      clearTimeout(deadline);
      clearTimeout(grace);
      resolve(result);
    };
    const conclude = (r: StartTlsProbe) => {
      result ??= r;
    };
    const hangUp = () => {
      secure?.destroy();
      plain.destroy();
    };
    const abort = (r: StartTlsProbe) => {
      conclude(r);
      hangUp();
    };
    let grace: NodeJS.Timeout | undefined;
    // One deadline for the whole conversation, QUIT included: whatever the server does (answers QUIT with
    // 221 and keeps the connection open, stops reading, trickles), the sockets are destroyed by then.
    const deadline = setTimeout(() => {
      abort({ kind: 'timeout', stage });
      // 'close' follows destroy() within a turn of the event loop; this only guards against it never coming.
      grace = setTimeout(release, CLOSE_GRACE_MS);
    }, options.timeoutMs);

    /**
     * RFC 5321 §4.1.1.10: QUIT, then the server answers 221 and closes. We close our side as soon as any
     * reply comes (RFC 5321 §4.1.1.10 lets the client close once it has the reply), or after
     * QUIT_WAIT_MS, so a server that answers and keeps the connection open holds nothing of ours.
     */
    const quit = (sock: Socket | TLSSocket, reader: ReplyReader) => {
      const timer = setTimeout(() => sock.destroy(), QUIT_WAIT_MS);
      const close = (how: 'soon' | 'now') => {
        clearTimeout(timer);
        // destroySoon: our QUIT (and a TLS close_notify) is flushed, then the socket is destroyed.
        if (how === 'soon') sock.destroySoon();
        else sock.destroy();
      };
      reader.next().then(
        () => close('soon'),
        () => close('now'),
      );
      sock.write('QUIT\r\n');
    };

    const plain: Socket = netConnect({ host: address, port: SMTP_PORT });
    plain.setNoDelay(true);
    plain.on('error', (err: NodeJS.ErrnoException) => {
      const error = err.code ?? err.message;
      if (stage === 'connect') abort({ kind: 'connect-failed', error });
      else if (stage !== 'handshake') abort({ kind: 'broken', stage, error });
      // During the handshake the TLS socket reports the failure.
    });
    plain.on('data', (chunk: Buffer) => replies.push(chunk));
    plain.on('close', () => {
      replies.close('connection closed');
      // A TLS socket layered on this one is gone with it.
      secure?.destroy();
      conclude(stage === 'handshake' ? { kind: 'tls-failed', error: 'connection closed during the handshake' } : { kind: 'broken', stage, error: 'connection closed' });
      release();
    });

    plain.once('connect', async () => {
      const sock = plain;
      try {
        // RFC 5321 §4.3.1: the greeting is 220; 554 means "no SMTP service here".
        stage = 'banner';
        const banner = await replies.next();
        if (banner.code !== 220) {
          conclude({ kind: 'refused', stage: 'banner', reply: banner.text });
          quit(sock, replies);
          return;
        }
        // RFC 3207 §4: STARTTLS is an ESMTP extension, so it is only ever advertised in reply to EHLO.
        stage = 'ehlo';
        sock.write(`EHLO ${options.ehloName}\r\n`);
        const ehlo = await replies.next();
        if (ehlo.code !== 250) {
          conclude({ kind: 'refused', stage: 'ehlo', reply: ehlo.text });
          quit(sock, replies);
          return;
        }
        const extensions = ehlo.lines.slice(1).map((l) => l.split(' ')[0]!.toUpperCase());
        if (!extensions.includes('STARTTLS')) {
          conclude({ kind: 'no-starttls', extensions });
          quit(sock, replies);
          return;
        }
        stage = 'starttls';
        sock.write('STARTTLS\r\n');
        const ready = await replies.next();
        // RFC 3207 §4: 220 "Ready to start TLS"; anything else (454 TLS not available) means no TLS.
        if (ready.code !== 220) {
          conclude({ kind: 'refused', stage: 'starttls', reply: ready.text });
          quit(sock, replies);
          return;
        }
        stage = 'handshake';
        // RFC 3207 §4.2: whatever the server sent in clear after its 220 is discarded, never read as TLS
        // or as a reply.
        sock.removeAllListeners('data');
        replies.close('STARTTLS');
        const tls = tlsConnect({
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
        secure = tls;
        tls.on('error', (err: NodeJS.ErrnoException) => {
          if (stage === 'handshake') abort({ kind: 'tls-failed', error: err.code ?? err.message });
        });
        tls.once('close', () => {
          if (stage === 'handshake') abort({ kind: 'tls-failed', error: 'connection closed during the handshake' });
          // The plain socket under it closes too; its 'close' releases the probe.
          plain.destroy();
        });
        tls.once('secureConnect', () => {
          stage = 'ehlo';
          const peer = tls.getPeerCertificate(true);
          const certificate = peer && Object.keys(peer).length > 0 ? certificateFacts(peer) : null;
          conclude({
            kind: 'tls',
            protocol: tls.getProtocol(),
            cipher: tls.getCipher()?.name ?? null,
            authorized: tls.authorized,
            authorizationError: tls.authorizationError ? String(tls.authorizationError) : null,
            certificate,
          });
          // RFC 5321 §4.1.1.10: QUIT may be sent at any time; over TLS it goes in the new session, read
          // under the same limits.
          const tlsReplies = new ReplyReader(() => hangUp());
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
    chainDer: presentedChain(cert as DetailedPeerCertificate),
  };
}

/** The certificates the peer sent, leaf first; Node links them by issuerCertificate, ending in a self-loop. */
function presentedChain(leaf: DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  // A TLS chain longer than this is no chain a sender would accept (OpenSSL's default depth is 100).
  for (let c: DetailedPeerCertificate | undefined = leaf; c?.raw !== undefined && out.length < MAX_CHAIN_CERTIFICATES; c = c.issuerCertificate) {
    out.push(c.raw);
    if (c.issuerCertificate === c) break;
  }
  return out;
}

const MAX_CHAIN_CERTIFICATES = 16;

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
