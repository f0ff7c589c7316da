/**
 * Socket activation under systemd (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES): the
 * listening sockets systemd opened, adopted by address. Readiness notification is src/app/notifier.ts.
 */
import { closeSync } from 'node:fs';
import net from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { BoundAddress, InheritedListener, InheritedListeners, ListenSpec } from './listen.js';

/** sd_listen_fds(3): passed descriptors start here. */
export const SD_LISTEN_FDS_START = 3;

export interface ListenFd {
  fd: number;
  /** From LISTEN_FDNAMES (FileDescriptorName= in the .socket unit), or `unknown` as systemd says. */
  name: string;
}

/**
 * The descriptors systemd passed to this process: none unless LISTEN_PID is our pid (the variables
 * may have been inherited from a parent they were meant for). Throws on malformed values.
 */
export function listenFdsFromEnv(env: NodeJS.ProcessEnv, pid: number): ListenFd[] {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return [];
  if (!/^\d+$/.test(env.LISTEN_PID)) throw new Error(`LISTEN_PID is not a process id: ${JSON.stringify(env.LISTEN_PID)}`);
  if (Number(env.LISTEN_PID) !== pid) return [];
  if (!/^\d{1,4}$/.test(env.LISTEN_FDS)) throw new Error(`LISTEN_FDS is not a count: ${JSON.stringify(env.LISTEN_FDS)}`);
  const count = Number(env.LISTEN_FDS);
  const names = env.LISTEN_FDNAMES === undefined ? [] : env.LISTEN_FDNAMES.split(':');
  return Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' }));
}

/** Removes the socket activation variables, so that no child process believes they are for it. */
export function clearListenEnv(env: NodeJS.ProcessEnv): void {
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
}

interface Adopted {
  fd: ListenFd;
  server: Server;
  address: BoundAddress;
  /** Connections accepted before a listener took this socket. */
  early: Socket[];
  deliver: ((socket: Socket) => void) | undefined;
}

/**
 * The listening sockets systemd handed over, matched to config specs by address: `tcp:127.0.0.1:8461`
 * takes the inherited socket bound to 127.0.0.1:8461, `unix:/run/x.sock` the one bound to that path.
 * So the config says where the daemon listens whether or not systemd opens the sockets first.
 */
export class InheritedSockets implements InheritedListeners {
  private constructor(
    private readonly pool: Adopted[],
    private readonly logger: Logger,
  ) {}

  /** Starts accepting on every passed descriptor that is a listening stream socket; others are closed. */
  static async adopt(fds: readonly ListenFd[], logger: Logger): Promise<InheritedSockets> {
    const pool: Adopted[] = [];
    for (const fd of fds) {
      const server = net.createServer();
      const entry: Adopted = { fd, server, address: undefined as unknown as BoundAddress, early: [], deliver: undefined };
      server.on('connection', (socket) => (entry.deliver ? entry.deliver(socket) : entry.early.push(socket)));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ fd: fd.fd }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        entry.address = addressOf(server);
      } catch (err) {
        logger.warn({ fd: fd.fd, name: fd.name, err: (err as Error).message }, 'passed descriptor is not a listening stream socket; closing it');
        server.close();
        try {
          closeSync(fd.fd);
        } catch {
          // already closed by the failed listen
        }
        continue;
      }
      logger.info({ fd: fd.fd, name: fd.name, address: entry.address.spec }, 'socket passed by the service manager');
      pool.push(entry);
    }
    return new InheritedSockets(pool, logger);
  }

  get size(): number {
    return this.pool.length;
  }

  take(spec: ListenSpec): InheritedListener | undefined {
    const i = this.pool.findIndex((e) => sameAddress(e.address, spec));
    if (i < 0) return undefined;
    const [entry] = this.pool.splice(i, 1) as [Adopted];
    return {
      server: entry.server,
      address: entry.address.kind === 'tcp' && spec.kind === 'tcp' ? { ...spec, port: entry.address.port } : spec,
      attach(onConnection) {
        entry.deliver = onConnection;
        for (const socket of entry.early.splice(0)) onConnection(socket);
      },
    };
  }

  /** Closes the sockets no configured listener matched, saying which (call after the listeners started). */
  async closeUnused(): Promise<void> {
    for (const entry of this.pool.splice(0)) {
      this.logger.warn(
        { fd: entry.fd.fd, name: entry.fd.name, address: entry.address.spec },
        'passed socket matches no configured listener (socketmap.listen, http.listen); closing it',
      );
      for (const socket of entry.early) socket.destroy();
      await new Promise<void>((resolve) => entry.server.close(() => resolve()));
    }
  }
}

function addressOf(server: Server): BoundAddress {
  const a = server.address();
  if (typeof a === 'string') return { kind: 'unix', spec: `unix:${a}`, path: a };
  if (a === null) throw new Error('the socket has no address');
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return { kind: 'tcp', spec: `tcp:${host}:${a.port}`, host: a.address, port: a.port };
}

function sameAddress(bound: BoundAddress, spec: ListenSpec): boolean {
  if (bound.kind === 'unix' || spec.kind === 'unix') return bound.kind === 'unix' && spec.kind === 'unix' && bound.path === spec.path;
  if (spec.port === 0 || bound.port !== spec.port) return false;
  const a = canonicalIp(bound.host);
  const b = canonicalIp(spec.host);
  return a !== undefined && a === b;
}

/** An IP literal in one spelling (`::0001` and `::1` alike); undefined for host names. */
function canonicalIp(host: string): string | undefined {
  if (net.isIPv4(host)) return host;
  if (!net.isIPv6(host)) return undefined;
  try {
    return new URL(`http://[${host}]/`).hostname;
  } catch {
    return undefined;
  }
}

