/**
 * Listening sockets (TCP and unix) for the line protocols: binding, the connection limit, unix socket
 * file hygiene and graceful close. What is spoken on a connection is the `onConnection` callback's job.
 */
import net from 'node:net';
import type { Server, Socket } from 'node:net';
import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import { parseListenSpec, type ListenSpec } from '../config/listen-spec.js';
import { resolveOwnership, type UnixOwnership } from './unix-owner.js';

/** How long a probe of an existing unix socket file may take before we assume something answers. */
const STALE_PROBE_TIMEOUT_MS = 1_000;
/** At most one "connection limit reached" log line per this interval, with a count of the rest. */
const LIMIT_LOG_INTERVAL_MS = 10_000;
/** How long close() lets connections finish their outstanding replies before cutting them. */
export const SHUTDOWN_GRACE_MS = 5_000;

// The one parser of listen addresses, shared with config validation (src/config/listen-spec.ts).
export { parseListenSpec, type ListenSpec } from '../config/listen-spec.js';

/** Where a listener ended up: for tcp, `port` is the bound port (useful with port 0). */
export type BoundAddress = ListenSpec;

export interface ListenerOptions {
  /** Connections beyond this many, across all listeners, are closed at accept. */
  maxConnections: number;
  /** Mode of unix socket files (owner and group by default: Postfix runs in the postfix group). */
  unixMode: number;
  /** Owner and group of unix socket files (names or ids); unset or null keeps the daemon's own. */
  unixOwnership?: UnixOwnership;
  /** close() waits this long for connections to finish before destroying them; default SHUTDOWN_GRACE_MS. */
  shutdownGraceMs?: number;
  /**
   * Sockets already listening, handed over by a service manager (systemd socket activation): a spec
   * whose address one of them has uses it instead of binding. See src/server/socket-activation.ts.
   */
  inherited?: InheritedListeners;
}

/** A pool of inherited listening sockets; `take` removes the one bound to `spec`, if any. */
export interface InheritedListeners {
  take(spec: ListenSpec): InheritedListener | undefined;
}

export interface InheritedListener {
  readonly server: Server;
  /** Where it listens (for tcp, the actual port). */
  readonly address: BoundAddress;
  /** Deliver its connections, including any that arrived before this call, to `onConnection`. */
  attach(onConnection: (socket: Socket) => void): void;
}

/** What a reload may change about a running group of listeners. */
export type ListenerChanges = Partial<Pick<ListenerOptions, 'maxConnections' | 'shutdownGraceMs' | 'unixMode'>>;

export interface PendingListenerUpdate {
  readonly opened: string[];
  readonly closed: string[];
  commit(): void;
  abort(): Promise<void>;
}

/** What a protocol hands back for a connection so close() can end it at a request boundary. */
export interface ConnectionControl {
  /** Stop taking requests, write the replies still owed, then end the connection. */
  shutdown(): void;
}

export type ConnectionCallback = (socket: Socket, listener: ListenSpec) => ConnectionControl | void;

export interface Listeners {
  /** The listeners bound now (update() changes them). */
  readonly addresses: readonly BoundAddress[];
  /** Connections currently open, across all listeners. */
  readonly connectionCount: number;
  /**
   * Makes the bound set equal to `specs` (config reload): binds the specs not bound yet (all or nothing:
   * on failure nothing changes and the error names the spec), then stops the listeners no longer listed
   * and ends their connections gracefully. Listeners in both keep running, connections included.
   * `options` changes the connection limit and grace period from now on.
   */
  update(specs: readonly (string | ListenSpec)[], options?: ListenerChanges): Promise<{ opened: string[]; closed: string[] }>;
  /**
   * update() in two steps, for a caller that changes several groups at once: binds the new specs now
   * (they accept connections already), and commit() stops the removed ones and applies `options`, or
   * abort() closes the new ones again. One pending update at a time.
   */
  prepareUpdate(specs: readonly (string | ListenSpec)[], options?: ListenerChanges): Promise<PendingListenerUpdate>;
  /** Stops accepting, ends open connections gracefully, removes unix socket files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Binds every spec (all or nothing: if one fails, the ones already bound are closed and the error names
 * the spec) and calls `onConnection` for each accepted connection within the limit.
 */
export async function startListeners(
  specs: readonly (string | ListenSpec)[],
  onConnection: ConnectionCallback,
  options: ListenerOptions,
  logger: Logger,
): Promise<Listeners> {
  const parsed = specs.map((s) => (typeof s === 'string' ? parseListenSpec(s) : s));
  const current: ListenerOptions = { ...options };
  const connections = new Map<Socket, { control: ConnectionControl | undefined; listener: BoundListener }>();
  const limitLog = rateLimitedWarning(logger, 'connection limit reached; closing new connections');
  // An accept that fails (EMFILE, ENFILE: out of descriptors) is emitted as the server's 'error'. Without
  // a listener it would end the process; the listener keeps serving the connections it has, and libuv
  // keeps accepting once descriptors are free again.
  const acceptFailed = rateLimitedWarning(logger, 'accepting a connection failed; open connections are still served');
  const onServerError = (spec: ListenSpec) => (err: Error) =>
    acceptFailed({ listen: spec.spec, err: errno(err) ?? err.message, maxConnections: current.maxConnections });
  let bound: BoundListener[] = [];
  /** Connections of listeners that update() removed, still finishing; close() waits for them too. */
  const draining = new Set<Promise<void>>();
  let closing = false;

  const accept = (listener: BoundListener, socket: Socket): void => {
    // A rejected socket may still report a reset; it must not become an uncaught 'error'.
    socket.on('error', () => {});
    if (closing || !listener.ready || listener.stopped) {
      socket.destroy();
      return;
    }
    if (connections.size >= current.maxConnections) {
      socket.destroy();
      limitLog({ maxConnections: current.maxConnections });
      return;
    }
    const entry = { control: undefined as ConnectionControl | undefined, listener };
    connections.set(socket, entry);
    socket.once('close', () => connections.delete(socket));
    try {
      const control = onConnection(socket, listener.spec);
      if (control) entry.control = control;
    } catch (err) {
      logger.error({ err, listen: listener.spec.spec }, 'connection setup failed');
      socket.destroy();
    }
  };

  /** Binds every spec or none: on failure, the ones already bound are closed again. */
  const bindAll = async (list: readonly ListenSpec[], with_: ListenerOptions = current): Promise<BoundListener[]> => {
    const done: BoundListener[] = [];
    try {
      for (const spec of list) done.push(await bind(spec, accept, onServerError(spec), with_));
    } catch (err) {
      await Promise.all(done.map((b) => b.close()));
      throw err;
    }
    for (const b of done) logger.info({ listen: b.address.spec, address: b.address, inherited: b.inherited || undefined }, 'listening');
    return done;
  };

  /** Asks each connection to finish (ConnectionControl) and destroys what is left after the grace period. */
  const drain = async (open: Socket[]): Promise<void> => {
    for (const socket of open) {
      const control = connections.get(socket)?.control;
      if (control) control.shutdown();
      else socket.end();
    }
    const allClosed = Promise.all(open.map((socket) => socketClosed(socket)));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, current.shutdownGraceMs ?? SHUTDOWN_GRACE_MS);
    });
    await Promise.race([allClosed, expired]);
    clearTimeout(timer);
    for (const socket of open) socket.destroy();
    await allClosed;
  };

  bound = await bindAll(parsed);

  /** Stops `removed` now (no new connections) and lets their connections finish in the background. */
  const retire = (removed: BoundListener[]): void => {
    if (removed.length === 0) return;
    for (const b of removed) {
      b.stopped = true;
      logger.info({ listen: b.address.spec }, 'stopped listening');
    }
    // server.close() stops accepting at once but completes only when its connections are gone, so the
    // drain runs beside it; close() waits for both.
    const orphans = [...connections.entries()].filter(([, c]) => removed.includes(c.listener)).map(([socket]) => socket);
    const pending: Promise<void> = Promise.all([...removed.map((b) => b.close()), drain(orphans)])
      .then(() => undefined)
      .finally(() => draining.delete(pending));
    draining.add(pending);
  };

  const prepareUpdate: Listeners['prepareUpdate'] = async (specList, changes = {}) => {
    if (closing) throw new Error('listeners are closed');
    const wanted = new Map<string, ListenSpec>();
    for (const s of specList) {
      const spec = typeof s === 'string' ? parseListenSpec(s) : s;
      wanted.set(spec.spec, spec);
    }
    const have = new Set(bound.map((b) => b.spec.spec));
    const added = await bindAll(
      [...wanted.values()].filter((spec) => !have.has(spec.spec)),
      { ...current, ...changes },
    );
    let settled = false;
    const abort = async (): Promise<void> => {
      if (settled) return;
      settled = true;
      retire(added);
      await Promise.all([...draining]);
    };
    if (closing) {
      // close() ran while we were binding: it did not see these.
      await abort();
      throw new Error('listeners are closed');
    }
    const removed = bound.filter((b) => !wanted.has(b.spec.spec));
    return {
      opened: added.map((b) => b.spec.spec),
      closed: removed.map((b) => b.spec.spec),
      commit() {
        if (settled) return;
        settled = true;
        if (closing) {
          retire(added);
          return;
        }
        Object.assign(current, changes);
        bound = [...bound.filter((b) => wanted.has(b.spec.spec)), ...added];
        retire(removed);
      },
      abort,
    };
  };

  const update: Listeners['update'] = async (specList, changes) => {
    const pending = await prepareUpdate(specList, changes);
    pending.commit();
    return { opened: pending.opened, closed: pending.closed };
  };

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing = true;
    const serversClosed = Promise.all(bound.map((b) => b.close()));
    await drain([...connections.keys()]);
    await Promise.all([...draining]);
    await serversClosed;
  };

  return {
    get addresses() {
      return bound.map((b) => b.address);
    },
    get connectionCount() {
      return connections.size;
    },
    update,
    prepareUpdate,
    close: () => (closed ??= close()),
  };
}

interface BoundListener {
  readonly spec: ListenSpec;
  address: BoundAddress;
  /** False until a unix socket has its final mode: connections before that are refused. */
  ready: boolean;
  /** Set when update() removes it: connections that race the close are refused. */
  stopped: boolean;
  /** Handed over by the service manager rather than bound here. */
  inherited: boolean;
  close(): Promise<void>;
}

async function bind(
  spec: ListenSpec,
  accept: (listener: BoundListener, socket: Socket) => void,
  onError: (err: Error) => void,
  options: ListenerOptions,
): Promise<BoundListener> {
  const inherited = options.inherited?.take(spec);
  if (inherited) {
    inherited.server.on('error', onError);
    // The service manager owns the socket (and a unix socket's file and mode): we only accept on it.
    const listener: BoundListener = {
      spec,
      address: inherited.address,
      ready: true,
      stopped: false,
      inherited: true,
      close: () => closeServer(inherited.server),
    };
    inherited.attach((socket) => accept(listener, socket));
    return listener;
  }
  const server = net.createServer();
  const listener: BoundListener = {
    spec,
    address: spec,
    ready: spec.kind === 'tcp',
    stopped: false,
    inherited: false,
    close: () => closeServer(server),
  };
  server.on('connection', (socket) => accept(listener, socket));
  try {
    if (spec.kind === 'unix') await removeStaleSocket(spec);
    await listen(server, spec.kind === 'tcp' ? { host: spec.host, port: spec.port } : { path: spec.path });
  } catch (err) {
    await closeServer(server);
    throw new Error(`listen ${spec.spec}: ${message(err)}`, { cause: err });
  }
  server.on('error', onError);
  if (spec.kind === 'tcp') {
    listener.address = { ...spec, port: (server.address() as net.AddressInfo).port };
    return listener;
  }
  try {
    await chmod(spec.path, options.unixMode);
    if (options.unixOwnership && (options.unixOwnership.owner !== null || options.unixOwnership.group !== null)) {
      const { uid, gid } = resolveOwnership(options.unixOwnership);
      await chown(spec.path, uid, gid);
    }
    const { ino, dev } = await lstat(spec.path);
    listener.ready = true;
    listener.close = async () => {
      await closeServer(server);
      await removeOwnSocket(spec.path, ino, dev);
    };
    return listener;
  } catch (err) {
    await closeServer(server);
    throw new Error(`listen ${spec.spec}: cannot set mode or owner: ${message(err)}`, { cause: err });
  }
}

function listen(server: Server, where: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}

/**
 * A socket file left by a crashed daemon makes listen() fail with EADDRINUSE. Remove it only when it is
 * a socket and nothing accepts on it: never a regular file (a typo in the config must not delete data),
 * never a live daemon's socket.
 */
async function removeStaleSocket(spec: Extract<ListenSpec, { kind: 'unix' }>): Promise<void> {
  let stat;
  try {
    stat = await lstat(spec.path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw err;
  }
  if (!stat.isSocket()) throw new Error(`${spec.path} exists and is not a socket; refusing to remove it`);
  if (await answers(spec.path)) throw new Error(`${spec.path} is in use by another process`);
  await unlink(spec.path).catch((err: unknown) => {
    if (errno(err) !== 'ENOENT') throw err;
  });
}

/** Whether something accepts connections on a unix socket file. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.connect({ path: file });
    probe.setTimeout(STALE_PROBE_TIMEOUT_MS, () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err) => {
      probe.destroy();
      const code = errno(err);
      if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false);
      else reject(err);
    });
  });
}

/** Node already unlinks a unix socket on close; this covers the rest, and never someone else's file. */
async function removeOwnSocket(file: string, ino: number, dev: number): Promise<void> {
  try {
    const stat = await lstat(file);
    if (stat.isSocket() && stat.ino === ino && stat.dev === dev) await unlink(file);
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
  }
}

function socketClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) resolve();
    else socket.once('close', () => resolve());
  });
}

/**
 * A warning the first time something happens, then at most one per LIMIT_LOG_INTERVAL_MS with the count
 * of the occurrences in between: a flood of refused or failed accepts is a few log lines, not one each.
 */
function rateLimitedWarning(logger: Logger, message: string): (fields: Record<string, unknown>) => void {
  let lastAt = -Infinity;
  let suppressed = 0;
  return (fields) => {
    const now = Date.now();
    if (now - lastAt < LIMIT_LOG_INTERVAL_MS) {
      suppressed += 1;
      return;
    }
    logger.warn({ ...fields, sinceLastLog: suppressed + 1 }, message);
    lastAt = now;
    suppressed = 0;
  };
}

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
