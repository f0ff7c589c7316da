/** The running daemon: store, resolver and socketmap listeners, built from one config. */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { PolicyStore } from '../cache/store.js';
import { openStore } from '../cache/open-store.js';
import { assembleResolver } from '../resolver/assemble.js';
import type { Resolver } from '../resolver/resolver.js';
import { Refresher } from '../resolver/refresher.js';
import type { ResolverObserver } from '../resolver/observer.js';
import { serveEximConnection, type EximServerOptions } from './exim.js';
import { eximLookupHandler } from './exim-lookup.js';
import { startListeners, type Listeners } from './listen.js';
import { postfixMapHandler } from './postfix-map.js';
import { serveSocketmapConnection, type SocketmapServerOptions } from './socketmap.js';

export interface Daemon {
  resolver: Resolver;
  refresher: Refresher;
  store: PolicyStore;
  socketmap: Listeners;
  /** The Exim line protocol listeners; undefined when `exim.listen` is empty. */
  exim: Listeners | undefined;
  close(): Promise<void>;
}

export interface DaemonOverrides {
  /** Use this store instead of opening the configured one (tests). */
  store?: PolicyStore;
  now?: () => number;
  observer?: ResolverObserver;
}

export async function startDaemon(config: Config, logger: Logger, overrides: DaemonOverrides = {}): Promise<Daemon> {
  const store =
    overrides.store ??
    (await openStore({ store: config.cache.store, path: config.cache.path, redisUrl: config.cache.redis_url }, logger));
  const { resolver, fetcher } = assembleResolver(config, store, logger, {
    ...(overrides.now ? { now: overrides.now } : {}),
    ...(overrides.observer ? { observer: overrides.observer } : {}),
  });
  const refresher = new Refresher(
    resolver,
    { tickMs: config.resolver.refresh_tick_ms, batch: config.resolver.refresh_batch, concurrency: config.resolver.refresh_concurrency },
    logger,
  );
  const handler = postfixMapHandler(resolver, config.zones);
  const s = config.socketmap;
  const options: SocketmapServerOptions = {
    maxRequestBytes: s.max_request_bytes,
    maxConnections: s.max_connections,
    idleTimeoutMs: s.idle_timeout_ms,
    requestTimeoutMs: s.request_timeout_ms,
    unixMode: s.unix_mode,
  };
  let socketmap: Listeners;
  try {
    socketmap = await startListeners(s.listen, (socket) => serveSocketmapConnection(socket, handler, options, logger), options, logger);
  } catch (err) {
    await fetcher.close();
    await store.close();
    throw err;
  }
  let exim: Listeners | undefined;
  if (config.exim.listen.length > 0) {
    const e = config.exim;
    const eximOptions: EximServerOptions = {
      maxRequestBytes: e.max_request_bytes,
      maxConnections: e.max_connections,
      requestTimeoutMs: e.request_timeout_ms,
      unixMode: e.unix_mode,
    };
    const eximHandler = eximLookupHandler(resolver);
    try {
      exim = await startListeners(e.listen, (socket) => serveEximConnection(socket, eximHandler, eximOptions, logger), eximOptions, logger);
    } catch (err) {
      await socketmap.close();
      await fetcher.close();
      await store.close();
      throw err;
    }
  }
  logger.info(
    { listen: socketmap.addresses.map((a) => a.spec), exim: exim?.addresses.map((a) => a.spec) ?? [], store: store.kind },
    'mta-sts-sidecar ready',
  );
  // Answers already come from the store on a hot-tier miss; warming only lets the refresher see every entry.
  resolver.warmFromStore().then(
    (loaded) => {
      if (loaded > 0) logger.info({ loaded }, 'cached policies loaded');
      refresher.start();
    },
    (err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'could not read cached policies; starting cold');
      refresher.start();
    },
  );

  let closing: Promise<void> | undefined;
  return {
    resolver,
    refresher,
    store,
    socketmap,
    exim,
    close() {
      closing ??= (async () => {
        await Promise.all([socketmap.close(), exim?.close()]);
        await refresher.stop();
        await resolver.settle();
        await fetcher.close();
        await store.flush();
        await store.close();
      })();
      return closing;
    },
  };
}
