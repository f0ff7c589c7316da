/**
 * A real HTTPS server (node:https) on <address>:443 that plays any number of
 * `mta-sts.<domain>` policy hosts. The certificate is chosen per SNI name and
 * the response to `GET /.well-known/mta-sts.txt` per Host, from a route table
 * that tests change at runtime.
 *
 * A small TCP front end on :443 peeks at the TLS ClientHello, reads the SNI
 * name and hands the connection to one of two TLS servers: the normal one
 * (TLS 1.2+), or, for hosts whose route says `tls: 'legacy'`, one that speaks
 * only TLS 1.0/1.1. Same request handler for both.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { createTestCa, type KeyAndCert, type TestCa } from './ca.js';
import { assertLoopback } from './loopback.js';

export const POLICY_PATH = '/.well-known/mta-sts.txt';

export type CertChoice =
  | 'valid' // issued by the lab CA for the host name
  | 'wrong-name' // issued by the lab CA for wrong-name.invalid
  | 'cn-only' // issued by the lab CA with the host in the subject CN only, no subjectAltName
  | 'expired' // issued by the lab CA for the host, notAfter yesterday
  | 'not-yet-valid' // issued by the lab CA for the host, notBefore tomorrow
  | 'self-signed' // for the host, signed by its own key
  | 'other-ca'; // for the host, issued by an unrelated CA

export interface PolicyRoute {
  /** HTTP status. Default 200 (301 when `redirect` is set). */
  status?: number;
  /** Response headers, used verbatim. Default (when omitted): content-type text/plain. */
  headers?: OutgoingHttpHeaders;
  /** Response body. Default empty. */
  body?: string | Buffer;
  /** Certificate presented for this host (by SNI). Default 'valid'. Or a custom key+cert. */
  cert?: CertChoice | KeyAndCert;
  /** 'legacy' = this host only speaks TLS 1.0/1.1. Default 'modern' (TLS 1.2+). */
  tls?: 'modern' | 'legacy';
  /** Wait this long before sending the status line and headers. */
  delayMs?: number;
  /** Send the body `bytes` at a time, one chunk every `intervalMs`. */
  slowBody?: { bytes: number; intervalMs: number };
  /** After the body, never finish the response (chunked, no terminating chunk). */
  neverEnd?: boolean;
  /** Location for a redirect (status 301 unless `status` says otherwise). */
  redirect?: string;
  /** Destroy the socket after this many body bytes (Content-Length announces the full body). */
  resetAfterBytes?: number;
  /** Override Content-Length: a number, or false for none (chunked). Default: body length. */
  contentLength?: number | false;
}

export interface RequestRecord {
  host: string;
  sni: string | null;
  method: string;
  path: string;
  tlsVersion: string | null;
  headers: IncomingMessage['headers'];
  /** Date.now() when the request arrived. */
  at: number;
}

export interface PolicyServer {
  readonly address: string;
  readonly port: 443;
  /** The CA that issues the 'valid' certificates: trust `ca.certPem`. */
  readonly ca: TestCa;
  /** `https://<host>/.well-known/mta-sts.txt` */
  url(host: string): string;
  setRoute(host: string, route: PolicyRoute): void;
  removeRoute(host: string): void;
  /** Number of HTTP requests (any path) whose Host was `host`. */
  requests(host: string): number;
  /** Every request seen (optionally only for `host`), oldest first. */
  requestLog(host?: string): RequestRecord[];
  /** Forget request counts and log. */
  resetCounts(): void;
  /** Close listeners, destroy every connection (including hanging ones), cancel timers. */
  stop(): Promise<void>;
}

export interface StartPolicyServerOptions {
  address: string;
  /** Lab CA for 'valid' (and wrong-name/expired/not-yet-valid) certificates. Default: a fresh one. */
  ca?: TestCa;
  /** Initial routes. */
  routes?: Record<string, PolicyRoute>;
}

const LEGACY_CIPHERS = 'DEFAULT@SECLEVEL=0';
const DAY = 24 * 60 * 60 * 1000;
const PEEK_TIMEOUT_MS = 5000;
const PEEK_MAX_BYTES = 16 * 1024 + 5;

/** Extracts the SNI host name from a buffered TLS ClientHello record. undefined = need more bytes. */
export function parseClientHelloSni(buf: Buffer): string | null | undefined {
  if (buf.length < 5) return undefined;
  if (buf[0] !== 0x16) return null; // not a TLS handshake
  const recLen = buf.readUInt16BE(3);
  if (buf.length < 5 + recLen) return buf.length >= PEEK_MAX_BYTES ? null : undefined;
  try {
    const hs = buf.subarray(5, 5 + recLen);
    if (hs[0] !== 0x01) return null;
    const body = hs.subarray(4);
    let p = 34; // version(2) + random(32)
    p += 1 + body[p]!; // session id
    p += 2 + body.readUInt16BE(p); // cipher suites
    p += 1 + body[p]!; // compression methods
    if (p + 2 > body.length) return null;
    const end = Math.min(body.length, p + 2 + body.readUInt16BE(p));
    p += 2;
    for (let n = 0; n < 200 && p + 4 <= end; n++) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      p += 4;
      if (type === 0) {
        let q = p + 2; // skip server_name_list length
        while (q + 3 <= p + len) {
          const nameType = body[q]!;
          const nameLen = body.readUInt16BE(q + 1);
          if (nameType === 0) return body.subarray(q + 3, q + 3 + nameLen).toString('ascii').toLowerCase();
          q += 3 + nameLen;
        }
        return null;
      }
      p += len;
    }
    return null;
  } catch {
    return null;
  }
}

function normHost(h: string): string {
  return h.trim().toLowerCase().replace(/\.$/, '');
}

function hostOf(req: IncomingMessage): string {
  const raw = req.headers.host ?? (req.socket as TLSSocket).servername ?? '';
  const h = typeof raw === 'string' ? raw : '';
  // strip :port (no IPv6 literals in the lab)
  return normHost(h.replace(/:\d+$/, ''));
}

export async function startPolicyServer(opts: StartPolicyServerOptions): Promise<PolicyServer> {
  const { address } = opts;
  assertLoopback(address);
  const ca = opts.ca ?? (await createTestCa());
  let otherCa: Promise<TestCa> | null = null;
  const routes = new Map<string, PolicyRoute>();
  for (const [h, r] of Object.entries(opts.routes ?? {})) routes.set(normHost(h), r);
  const log: RequestRecord[] = [];
  const counts = new Map<string, number>();
  const contexts = new Map<string, Promise<SecureContext>>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  function later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, ms);
    timers.add(t);
  }

  async function keyAndCert(host: string, choice: CertChoice): Promise<KeyAndCert> {
    const now = Date.now();
    switch (choice) {
      case 'valid':
        return ca.issue({ dnsNames: [host] });
      case 'wrong-name':
        return ca.issue({ dnsNames: ['wrong-name.invalid'] });
      case 'cn-only':
        return ca.issue({ dnsNames: [host], subjectAltName: false });
      case 'expired':
        return ca.issue({ dnsNames: [host], notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) });
      case 'not-yet-valid':
        return ca.issue({ dnsNames: [host], notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) });
      case 'self-signed':
        return ca.issue({ dnsNames: [host], selfSigned: true });
      case 'other-ca':
        otherCa ??= createTestCa('lab unrelated CA');
        return (await otherCa).issue({ dnsNames: [host] });
      default:
        throw new Error(`lab policy server: unknown cert choice ${String(choice)}`);
    }
  }

  function contextFor(host: string, legacy: boolean): Promise<SecureContext> {
    const route = routes.get(host);
    const choice = route?.cert ?? 'valid';
    const custom = typeof choice === 'object' ? choice : null;
    const key = custom ? null : `${legacy ? 'legacy' : 'modern'}|${choice}|${host}`;
    const cached = key ? contexts.get(key) : undefined;
    if (cached) return cached;
    const made = (async () => {
      const kc = custom ?? (await keyAndCert(host, choice as CertChoice));
      return createSecureContext({
        key: kc.keyPem,
        cert: kc.certPem,
        ...(legacy ? { ciphers: LEGACY_CIPHERS, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' } : {}),
      });
    })();
    if (key) {
      contexts.set(key, made);
      made.catch(() => contexts.delete(key));
    }
    return made;
  }

  function sniCallback(legacy: boolean) {
    return (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => {
      contextFor(normHost(servername), legacy).then(
        (ctx) => cb(null, ctx),
        (err: Error) => cb(err),
      );
    };
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const host = hostOf(req);
    const sock = req.socket as TLSSocket;
    const path = (req.url ?? '').split('?')[0] ?? '';
    log.push({
      host,
      sni: typeof sock.servername === 'string' ? sock.servername : null,
      method: req.method ?? '',
      path,
      tlsVersion: sock.getProtocol?.() ?? null,
      headers: req.headers,
      at: Date.now(),
    });
    counts.set(host, (counts.get(host) ?? 0) + 1);
    req.resume();

    const route = routes.get(host);
    if (!route || path !== POLICY_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (route.delayMs && route.delayMs > 0) later(route.delayMs, () => respond(route, req, res));
    else respond(route, req, res);
  }

  function respond(route: PolicyRoute, req: IncomingMessage, res: ServerResponse): void {
    if (res.destroyed || req.socket.destroyed) return;
    const body = typeof route.body === 'string' ? Buffer.from(route.body, 'utf8') : (route.body ?? Buffer.alloc(0));
    const headers: OutgoingHttpHeaders = { ...(route.headers ?? { 'content-type': 'text/plain' }) };
    const hasLength = Object.keys(headers).some((k) => k.toLowerCase() === 'content-length');
    if (!hasLength) {
      if (typeof route.contentLength === 'number') headers['content-length'] = route.contentLength;
      else if (route.contentLength !== false && !route.neverEnd) headers['content-length'] = body.length;
    }
    if (route.redirect !== undefined) headers['location'] = route.redirect;
    const status = route.status ?? (route.redirect !== undefined ? 301 : 200);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      if (!route.neverEnd) res.end();
      return;
    }

    const limit = route.resetAfterBytes !== undefined ? Math.min(route.resetAfterBytes, body.length) : body.length;
    const payload = body.subarray(0, limit);
    const finish = () => {
      if (route.resetAfterBytes !== undefined) {
        res.socket?.destroy();
      } else if (!route.neverEnd) {
        res.end();
      }
    };
    const step = route.slowBody ? Math.max(1, Math.floor(route.slowBody.bytes)) : payload.length;
    const interval = route.slowBody ? Math.max(0, route.slowBody.intervalMs) : 0;
    let off = 0;
    const writeNext = () => {
      if (res.destroyed || res.socket?.destroyed) return;
      if (off >= payload.length) {
        finish();
        return;
      }
      const chunk = payload.subarray(off, off + step);
      off += chunk.length;
      const last = off >= payload.length;
      if (last) {
        res.write(chunk, () => finish());
      } else {
        res.write(chunk);
        later(interval, writeNext);
      }
    };
    if (payload.length === 0) {
      // Flush the headers now even if we never end (and before a reset).
      res.flushHeaders();
      if (route.resetAfterBytes !== undefined) later(20, finish);
      else finish();
    } else {
      writeNext();
    }
  }

  const defaultCert = await ca.issue({ dnsNames: ['lab-default.invalid'], ipAddresses: [address] });
  const modern: HttpsServer = createHttpsServer(
    { key: defaultCert.keyPem, cert: defaultCert.certPem, minVersion: 'TLSv1.2', SNICallback: sniCallback(false) },
    handle,
  );
  const legacy: HttpsServer = createHttpsServer(
    {
      key: defaultCert.keyPem,
      cert: defaultCert.certPem,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: LEGACY_CIPHERS,
      SNICallback: sniCallback(true),
    },
    handle,
  );
  for (const s of [modern, legacy]) {
    s.on('secureConnection', (tls: TLSSocket) => {
      sockets.add(tls);
      tls.on('close', () => sockets.delete(tls));
    });
    s.on('tlsClientError', (_err, tls: TLSSocket) => tls.destroy());
    s.on('clientError', (_err, sock) => sock.destroy());
  }

  // Front end: peek at the ClientHello to pick modern vs legacy TLS.
  const front: NetServer = createNetServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const sni = parseClientHelloSni(buf);
      if (sni === undefined) return;
      dispatch(sni);
    };
    const timer = setTimeout(() => dispatch(null), PEEK_TIMEOUT_MS);
    const dispatch = (sni: string | null) => {
      clearTimeout(timer);
      sock.off('data', onData);
      if (stopped || sock.destroyed) {
        sock.destroy();
        return;
      }
      sock.pause();
      if (buf.length) sock.unshift(buf);
      const route = sni ? routes.get(normHost(sni)) : undefined;
      (route?.tls === 'legacy' ? legacy : modern).emit('connection', sock);
    };
    sock.on('data', onData);
    sock.on('close', () => clearTimeout(timer));
  });

  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen({ host: address, port: 443, exclusive: true }, () => {
      front.off('error', reject);
      resolve();
    });
  });

  return {
    address,
    port: 443,
    ca,
    url: (host) => `https://${host}${POLICY_PATH}`,
    setRoute(host, route) {
      const h = normHost(host);
      routes.set(h, route);
      for (const k of contexts.keys()) if (k.endsWith(`|${h}`)) contexts.delete(k);
    },
    removeRoute(host) {
      routes.delete(normHost(host));
    },
    requests: (host) => counts.get(normHost(host)) ?? 0,
    requestLog: (host) => (host === undefined ? [...log] : log.filter((r) => r.host === normHost(host))),
    resetCounts() {
      counts.clear();
      log.length = 0;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((r) => front.close(() => r()));
      for (const s of sockets) s.destroy();
      sockets.clear();
      await closed;
    },
  };
}
