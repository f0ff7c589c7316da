/**
 * The operator's HTTP endpoint on its own listeners (config `http.listen`): `/metrics` (Prometheus text
 * format), `/healthz` (the process answers) and `/readyz` (listeners up, store reachable). Binding, unix
 * socket hygiene, socket activation and the connection limit are src/server/listen.ts's, as for the
 * socketmap: each accepted socket is handed to a node:http server that never listens itself.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ConnectionCallback, ConnectionControl } from './listen.js';

/** An idle keep-alive connection, or one sending its request too slowly, is closed after this. */
const SOCKET_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface Readiness {
  ready: boolean;
  /** One entry per check, `ok` or what is wrong (`store: unreachable: ...`). */
  checks: Record<string, string>;
  /** Facts shown after the checks that do not decide readiness (`dnssec: validating ...`). */
  details?: Record<string, string>;
}

export interface HttpEndpoints {
  /** Prometheus exposition text and its content type. */
  metrics(): Promise<{ body: string; contentType: string }>;
  readiness(): Promise<Readiness>;
}

/** The request handler alone: routes, methods, status codes. */
export function httpRequestHandler(endpoints: HttpEndpoints, logger: Logger) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, contentType = 'text/plain; charset=utf-8', headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      send(404, 'not found: try /metrics, /healthz or /readyz\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'method not allowed\n', undefined, { allow: 'GET, HEAD' });
      return;
    }
    try {
      if (path === '/healthz') {
        send(200, 'ok\n');
      } else if (path === '/readyz') {
        const { ready, checks, details } = await endpoints.readiness();
        const body = Object.entries({ ...checks, ...details }).map(([k, v]) => `${k}: ${v}\n`).join('');
        send(ready ? 200 : 503, body);
      } else {
        const { body, contentType } = await endpoints.metrics();
        send(200, body, contentType);
      }
    } catch (err) {
      logger.error({ err, path }, 'http endpoint failed');
      if (!res.headersSent) send(500, 'internal error\n');
      else res.destroy();
    }
  };
}

/**
 * A ConnectionCallback for startListeners that serves the endpoints. shutdown() (close, reload) lets
 * a request in progress finish, then closes; an idle keep-alive connection closes at once.
 */
export function httpConnectionHandler(endpoints: HttpEndpoints, logger: Logger): ConnectionCallback {
  const handle = httpRequestHandler(endpoints, logger);
  const busy = new Set<Socket>();
  const closing = new Set<Socket>();
  const server = http.createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
    const socket = req.socket;
    busy.add(socket);
    if (closing.has(socket)) res.setHeader('connection', 'close');
    res.once('close', () => {
      busy.delete(socket);
      if (closing.has(socket)) socket.end();
    });
    void handle(req, res);
  });
  server.timeout = SOCKET_TIMEOUT_MS;
  server.on('clientError', (_err, socket) => socket.destroy());

  return (socket): ConnectionControl => {
    socket.once('close', () => {
      busy.delete(socket);
      closing.delete(socket);
    });
    server.emit('connection', socket);
    return {
      shutdown() {
        closing.add(socket);
        if (!busy.has(socket)) socket.end();
      },
    };
  };
}
