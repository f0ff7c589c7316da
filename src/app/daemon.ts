/**
 * The running daemon: store, resolver, listeners (socketmap, Exim, HTTP metrics/health) and metrics,
 * built from one config and changed in place by reload() (src/app/reload.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { PolicyStore } from '../cache/store.js';
import type { Resolver } from '../resolver/resolver.js';
import type { Refresher } from '../resolver/refresher.js';
import type { ResolverObserver } from '../resolver/observer.js';
import type { PolicyLookup } from '../resolver/types.js';
import { buildCore, openConfiguredStore, probeStore, SETTLE_ON_STOP_MS, startCore, stopCore, type Core } from './core.js';
import { serveEximConnection, type EximServerOptions } from '../server/exim/session.js';
import { eximLookupHandler } from '../server/exim/lookup.js';
import { httpConnectionHandler, type Readiness } from '../server/http.js';
import { startListeners, type ConnectionCallback, type InheritedListeners, type ListenerOptions, type Listeners } from '../server/listen.js';
import { combineObservers, Metrics } from './metrics.js';
import { postfixMapHandler, type HotPolicyLookup } from '../server/postfix/map.js';
import { applyReload, type ListenerGroup, type ReloadReport } from './reload.js';
import { serveSocketmapConnection, type SocketmapHandler, type SocketmapServerOptions } from '../server/postfix/session.js';

export interface Daemon {
  /** The current resolver (a reload that changes resolver, dns, fetch or cache settings replaces it). */
  readonly resolver: Resolver;
  readonly refresher: Refresher;
  readonly store: PolicyStore;
  readonly socketmap: Listeners;
  /** The Exim line protocol listeners; undefined while `exim.listen` is empty. */
  readonly exim: Listeners | undefined;
  /** /metrics, /healthz, /readyz (no addresses when `http.listen` is empty). */
  readonly http: Listeners;
  readonly metrics: Metrics;
  /** The config in force. */
  readonly config: Config;
  /** Applies a new config without a restart; rejects, changing nothing, when part of it cannot be applied. */
  reload(next: Config): Promise<ReloadReport>;
  /** What /readyz reports: listeners up, store reachable, not stopping. */
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}

export interface DaemonOverrides {
  /** Use this store instead of opening the configured one (tests); a reload never replaces it. */
  store?: PolicyStore;
  now?: () => number;
  observer?: ResolverObserver;
  /** Listening sockets passed by systemd (socket activation), matched to specs by address. */
  inherited?: InheritedListeners;
  metrics?: Metrics;
}

export async function startDaemon(config: Config, logger: Logger, overrides: DaemonOverrides = {}): Promise<Daemon> {
  const metrics = overrides.metrics ?? new Metrics();
  const extras = {
    observer: combineObservers(metrics.observer, overrides.observer),
    ...(overrides.now ? { now: overrides.now } : {}),
  };
  let current = config;
  const store = overrides.store ?? (await openConfiguredStore(config, logger));
  let core: Core;
  try {
    core = buildCore(config, store, logger, extras);
  } catch (err) {
    await store.close();
    throw err;
  }
  // Handlers read the current resolver and zones on every request, so a reload reaches open connections.
  const lookup: HotPolicyLookup = {
    lookup: (domain) => core.resolver.lookup(domain),
    // Cached answers are written without a trip through the promise queue (BENCHMARKS.md).
    lookupHot: (domain) => core.resolver.lookupHot(domain),
  };
  let mapHandler: SocketmapHandler = postfixMapHandler(lookup, config.zones);
  const zoneOf = (name: string) => (Object.hasOwn(current.zones, name) ? name : 'default');
  const countedMap = metrics.countReplies('socketmap', (name, key) => mapHandler(name, key), zoneOf);
  metrics.declareZones('socketmap', Object.keys(config.zones));
  const eximHandler = metrics.countEximReplies(eximLookupHandler(lookup));
  let socketmapOptions = socketmapOptionsOf(config, overrides.inherited);
  let eximOptions = eximOptionsOf(config, overrides.inherited);
  const httpOptions = (c: Config): ListenerOptions => ({
    maxConnections: c.http.max_connections,
    unixMode: c.socketmap.unix_mode,
    shutdownGraceMs: c.socketmap.shutdown_grace_ms,
    ...(overrides.inherited ? { inherited: overrides.inherited } : {}),
  });

  const onSocketmap: ConnectionCallback = (socket) => serveSocketmapConnection(socket, countedMap, socketmapOptions, logger);
  const onExim: ConnectionCallback = (socket) => serveEximConnection(socket, eximHandler, eximOptions, logger);
  let stopping = false;
  const readiness = async (): Promise<Readiness> => {
    const checks: Record<string, string> = {};
    checks.socketmap = socketmap.addresses.length > 0 ? 'ok' : 'no listener';
    if (exim) checks.exim = exim.addresses.length > 0 || current.exim.listen.length === 0 ? 'ok' : 'no listener';
    checks.store = await probeStore(core.store);
    if (stopping) checks.daemon = 'stopping';
    return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
  };
  const onHttp = httpConnectionHandler(
    {
      metrics: async () => ({ body: await metrics.render(), contentType: metrics.contentType }),
      readiness,
    },
    logger,
  );

  const opened: Listeners[] = [];
  const closeOpened = async () => {
    await Promise.all(opened.map((l) => l.close()));
    await stopCore(core, { closeStore: true });
  };
  let socketmap: Listeners;
  let exim: Listeners | undefined;
  let http: Listeners;
  try {
    socketmap = await startListeners(config.socketmap.listen, onSocketmap, socketmapOptions, logger);
    opened.push(socketmap);
    if (config.exim.listen.length > 0) {
      exim = await startListeners(config.exim.listen, onExim, eximOptions, logger);
      opened.push(exim);
    }
    http = await startListeners(config.http.listen, onHttp, httpOptions(config), logger);
    opened.push(http);
  } catch (err) {
    await closeOpened();
    throw err;
  }
  metrics.setSources({
    policyCounts: () => core.resolver.policyCounts(),
    connections: () => ({ socketmap: socketmap.connectionCount, exim: exim?.connectionCount ?? 0, http: http.connectionCount }),
  });
  logger.info(
    {
      listen: socketmap.addresses.map((a) => a.spec),
      exim: exim?.addresses.map((a) => a.spec) ?? [],
      http: http.addresses.map((a) => a.spec),
      store: core.store.kind,
    },
    'mta-sts-sidecar ready',
  );
  // Nothing here needs root once started (docs/reliability.md): say so, once, to whoever runs it as root.
  if (process.getuid?.() === 0) {
    logger.warn('running as root, which the daemon does not need: run it as an unprivileged user (the Debian package does)');
  }
  startCore(core, logger);

  const retiring = new Set<Promise<void>>();
  const groups: ListenerGroup[] = [
    { name: 'socketmap', prepare: (next) => socketmap.prepareUpdate(next.socketmap.listen, listenerChanges(socketmapOptionsOf(next))) },
    {
      name: 'exim',
      prepare: async (next) => {
        if (exim) return exim.prepareUpdate(next.exim.listen, listenerChanges(eximOptionsOf(next)));
        if (next.exim.listen.length === 0) return { opened: [], closed: [], commit() {}, async abort() {} };
        // The first Exim listeners of this run: a group of their own, kept once the reload commits.
        const started = await startListeners(next.exim.listen, onExim, eximOptionsOf(next, overrides.inherited), logger);
        return {
          opened: next.exim.listen,
          closed: [],
          commit: () => void (exim = started),
          abort: () => started.close(),
        };
      },
    },
    { name: 'http', prepare: (next) => http.prepareUpdate(next.http.listen, listenerChanges(httpOptions(next))) },
  ];

  let reloading: Promise<ReloadReport> | undefined;
  const reload = async (next: Config): Promise<ReloadReport> => {
    if (stopping) throw new Error('the daemon is stopping');
    return applyReload(
      {
        config: current,
        core,
        storeFixed: overrides.store !== undefined,
        groups,
        openStore: (c) => openConfiguredStore(c, logger),
        buildCore: (c, s) => buildCore(c, s, logger, extras),
        commit(nextConfig, nextCore) {
          current = nextConfig;
          logger.level = nextConfig.log.level;
          mapHandler = postfixMapHandler(lookup, nextConfig.zones);
          metrics.declareZones('socketmap', Object.keys(nextConfig.zones));
          socketmapOptions = socketmapOptionsOf(nextConfig, overrides.inherited);
          eximOptions = eximOptionsOf(nextConfig, overrides.inherited);
          if (nextCore) core = nextCore;
        },
        track(work) {
          retiring.add(work);
          void work.finally(() => retiring.delete(work));
        },
      },
      next,
      logger,
    );
  };

  let closing: Promise<void> | undefined;
  return {
    get resolver() {
      return core.resolver;
    },
    get refresher() {
      return core.refresher;
    },
    get store() {
      return core.store;
    },
    socketmap,
    get exim() {
      return exim;
    },
    http,
    metrics,
    get config() {
      return current;
    },
    reload(next) {
      // One at a time: a second SIGHUP waits for the first reload, then applies its own config.
      const run = (reloading ?? Promise.resolve()).catch(() => undefined).then(() => reload(next));
      reloading = run;
      return run;
    },
    readiness,
    close() {
      closing ??= (async () => {
        stopping = true;
        await (reloading ?? Promise.resolve()).catch(() => undefined);
        await Promise.all([socketmap.close(), exim?.close(), http.close()]);
        await Promise.all([...retiring]);
        await stopCore(core, { closeStore: true, settleMs: SETTLE_ON_STOP_MS });
      })();
      return closing;
    },
  };
}

function socketmapOptionsOf(config: Config, inherited?: InheritedListeners): SocketmapServerOptions {
  const s = config.socketmap;
  return {
    maxRequestBytes: s.max_request_bytes,
    maxConnections: s.max_connections,
    idleTimeoutMs: s.idle_timeout_ms,
    requestTimeoutMs: s.request_timeout_ms,
    unixMode: s.unix_mode,
    unixOwnership: { owner: s.unix_owner, group: s.unix_group },
    shutdownGraceMs: s.shutdown_grace_ms,
    ...(inherited ? { inherited } : {}),
  };
}

function eximOptionsOf(config: Config, inherited?: InheritedListeners): EximServerOptions {
  const e = config.exim;
  return {
    maxRequestBytes: e.max_request_bytes,
    maxConnections: e.max_connections,
    requestTimeoutMs: e.request_timeout_ms,
    unixMode: e.unix_mode,
    unixOwnership: { owner: e.unix_owner, group: e.unix_group },
    shutdownGraceMs: config.socketmap.shutdown_grace_ms,
    ...(inherited ? { inherited } : {}),
  };
}

function listenerChanges(options: ListenerOptions) {
  return { maxConnections: options.maxConnections, unixMode: options.unixMode, shutdownGraceMs: options.shutdownGraceMs };
}
