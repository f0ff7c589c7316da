/**
 * The running daemon, the one composition root: store, resolver and refresher (the core), the listeners
 * of each protocol (socketmap, Exim, HTTP metrics/health) and the metrics. `Daemon.start` builds it with
 * `apply(config)`, and a reload is the same `apply` with the next config:
 *
 * - log.level, zones, per-connection limits: switched at once (zones apply to open connections too);
 * - listeners: new ones bound, removed ones closed (their connections finish their replies first),
 *   unchanged ones untouched with their connections;
 * - resolver, dns, fetch: a new core over the same store; its hot tier is refilled from the store, so
 *   cached policies stay (remembered absences and failure backoffs start afresh);
 * - cache (store kind, path, URL): the new store is opened, the old one flushed and closed;
 * - log.format: needs a restart (reported).
 *
 * All or nothing: everything that can fail (opening a store, reading fetch.ca_file, binding) happens
 * before anything is switched; on failure the new pieces are closed and the running config stays.
 */
import type { Logger } from 'pino';
import type { PolicyStore } from '../cache/store.js';
import { DEFAULT_ZONE, type Config } from '../config/schema.js';
import type { Refresher } from '../resolver/refresher.js';
import type { Resolver } from '../resolver/resolver.js';
import type { KeySkipReason } from '../sts/domain.js';
import { serveEximConnection, type EximServerOptions } from '../server/exim/session.js';
import { eximLookupHandler } from '../server/exim/lookup.js';
import { httpConnectionHandler, type Readiness } from '../server/http.js';
import type { InheritedListeners, ListenerOptions, PendingListenerUpdate } from '../server/listen.js';
import { mxFilterHandler, requireTlsHandler, withReservedMaps } from '../server/postfix/filter-maps.js';
import { postfixMapHandler, type DaneLookup, type HotPolicyLookup } from '../server/postfix/map.js';
import { serveSocketmapConnection, type SocketmapHandler, type SocketmapServerOptions } from '../server/postfix/session.js';
import { buildCore, detectDnssec, openConfiguredStore, probeStore, SETTLE_ON_STOP_MS, startCore, stopCore, type Core } from './core.js';
import { ListenerGroup } from './listener-group.js';
import { decideZones, type DecidedZones } from './zones.js';
import { Metrics } from './metrics.js';
import { diffConfig, planReload, type ReloadPlan } from './reload.js';

export interface ApplyReport {
  /** Every changed setting, `section.key` (or `zones`); empty at start. */
  changed: string[];
  /** Per listener group (socketmap, exim, http): what was opened and closed. */
  listeners: Record<string, { opened: string[]; closed: string[] }>;
  storeReopened: boolean;
  resolverRebuilt: boolean;
  restartNeeded: string[];
}

export interface DaemonOptions {
  /** Listening sockets passed by systemd (socket activation), matched to specs by address. */
  inherited?: InheritedListeners;
}

export class Daemon {
  readonly metrics = new Metrics();
  readonly socketmap: ListenerGroup;
  readonly exim: ListenerGroup;
  readonly http: ListenerGroup;
  private readonly groups: readonly ListenerGroup[];

  /** Undefined only until the first apply() has committed. */
  private current: Config | undefined;
  private core: Core | undefined;
  /** What the listeners' sessions use; replaced (never changed) by apply, read per connection or request. */
  private postfixHandler: SocketmapHandler;
  private readonly onSkippedPostfixKey: (reason: KeySkipReason) => void;
  private socketmapOptions: SocketmapServerOptions | undefined;
  private eximOptions: EximServerOptions | undefined;

  /** Handlers reach the current core through this, so a new core serves open connections at once. */
  private readonly lookup: HotPolicyLookup = {
    lookup: (domain) => this.liveCore.resolver.lookup(domain),
    // Cached answers are written without a trip through the promise queue (BENCHMARKS.md).
    lookupHot: (domain) => this.liveCore.resolver.lookupHot(domain),
  };
  /** The current core's DANE branch, for zones with `dane: auto` (issue 16). */
  private readonly daneLookup: DaneLookup = {
    active: () => this.core?.dane.validation?.validates === true,
    lookup: (domain) => this.liveCore.dane.resolver.lookup(domain),
    lookupHot: (domain) => this.liveCore.dane.resolver.lookupHot(domain),
  };
  private applying: Promise<unknown> = Promise.resolve();
  /** Retired cores still finishing their work; close() waits for them. */
  private readonly retiring = new Set<Promise<void>>();
  private stopping = false;
  private closing: Promise<void> | undefined;

  /** Builds the daemon from `config` and starts it; throws (with everything closed) if it cannot. */
  static async start(config: Config, logger: Logger, options: DaemonOptions = {}): Promise<Daemon> {
    const daemon = new Daemon(logger, options);
    try {
      await daemon.apply(config);
    } catch (err) {
      await daemon.close();
      throw err;
    }
    daemon.announce();
    return daemon;
  }

  private constructor(
    private readonly logger: Logger,
    options: DaemonOptions,
  ) {
    this.postfixHandler = () => Promise.reject(new Error('the daemon is not started'));
    const countedPostfix = this.metrics.countReplies('socketmap', (name, key) => this.postfixHandler(name, key), (name) => this.zoneOf(name));
    this.onSkippedPostfixKey = this.metrics.skippedKeyCounter('socketmap');
    // Exim has no zones: the default zone's `dane` decides whether its policy replies carry dane=yes|no.
    const eximDane: DaneLookup = { ...this.daneLookup, active: () => this.current?.zones[DEFAULT_ZONE]?.dane === 'auto' && this.daneLookup.active() };
    const exim = this.metrics.countEximReplies(eximLookupHandler(this.lookup, { onSkippedKey: this.metrics.skippedKeyCounter('exim'), dane: eximDane }));
    const onHttp = httpConnectionHandler(
      { metrics: async () => ({ body: await this.metrics.render(), contentType: this.metrics.contentType }), readiness: () => this.readiness() },
      logger,
    );
    const { inherited } = options;
    this.socketmap = new ListenerGroup(
      {
        name: 'socketmap',
        specsOf: (c) => c.socketmap.listen,
        optionsOf: socketmapOptionsOf,
        onConnection: (socket) => serveSocketmapConnection(socket, countedPostfix, this.socketmapOptions!, logger),
      },
      logger,
      inherited,
    );
    this.exim = new ListenerGroup(
      {
        name: 'exim',
        specsOf: (c) => c.exim.listen,
        optionsOf: eximOptionsOf,
        onConnection: (socket) => serveEximConnection(socket, exim, this.eximOptions!, logger),
      },
      logger,
      inherited,
    );
    this.http = new ListenerGroup(
      { name: 'http', specsOf: (c) => c.http.listen, optionsOf: httpOptionsOf, onConnection: onHttp },
      logger,
      inherited,
    );
    this.groups = [this.socketmap, this.exim, this.http];
    this.metrics.setSources({
      policyCounts: () => this.liveCore.resolver.policyCounts(),
      connections: () => Object.fromEntries(this.groups.map((g) => [g.name, g.connectionCount])),
      dnssecValidating: () => this.core?.dane.validation?.validates === true,
    });
  }

  /** The config in force. */
  get config(): Config {
    if (!this.current) throw new Error('the daemon is not started');
    return this.current;
  }

  get resolver(): Resolver {
    return this.liveCore.resolver;
  }

  get refresher(): Refresher {
    return this.liveCore.refresher;
  }

  get store(): PolicyStore {
    return this.liveCore.store;
  }

  /**
   * Makes the daemon run `next`: at start, everything; on reload, what changed. Rejects, changing nothing,
   * when part of it cannot be applied. One apply at a time: a second waits for the first.
   */
  apply(next: Config): Promise<ApplyReport> {
    const run = this.applying.catch(() => undefined).then(() => this.applyNow(next));
    this.applying = run;
    return run;
  }

  /** What /readyz reports: listeners up, store reachable, not stopping. */
  async readiness(): Promise<Readiness> {
    const checks: Record<string, string> = {};
    checks.socketmap = this.socketmap.addresses.length > 0 ? 'ok' : 'no listener';
    if (this.current && this.current.exim.listen.length > 0) checks.exim = this.exim.addresses.length > 0 ? 'ok' : 'no listener';
    checks.store = this.core ? await probeStore(this.core.store) : 'not open';
    if (this.stopping) checks.daemon = 'stopping';
    // DANE (issue 16): whether the resolver validates is a fact to show, not a condition of readiness.
    const v = this.core?.dane.validation;
    const details = { dnssec: v === undefined ? 'not known yet' : `${v.validates ? 'validating' : 'not validating'}: ${v.detail}` };
    return { ready: Object.values(checks).every((c) => c === 'ok'), checks, details };
  }

  /** Stops listening, finishes replies in progress, stops the core and closes the store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      await this.applying.catch(() => undefined);
      await Promise.all(this.groups.map((g) => g.close()));
      await Promise.all([...this.retiring]);
      if (this.core) await stopCore(this.core, { closeStore: true, settleMs: SETTLE_ON_STOP_MS });
    })();
    return this.closing;
  }

  private get liveCore(): Core {
    if (!this.core) throw new Error('the daemon is not started');
    return this.core;
  }

  /**
   * DESIGN.md: the socketmap name selects a zone; unknown names count (and answer) as `default`. The
   * reserved names (mx-filter, requiretls) are counted under their own name.
   */
  private zoneOf(name: string): string {
    const c = this.current;
    if (!c) return 'default';
    if (Object.hasOwn(c.zones, name) || name === c.socketmap.mx_filter_name || name === c.socketmap.requiretls_name) return name;
    return 'default';
  }

  /** The socketmap handler for `config`: the policy map of every zone, and the reserved filter maps. */
  private postfixHandlerOf(config: Config, zones: DecidedZones): SocketmapHandler {
    const s = config.socketmap;
    const policyMap = postfixMapHandler(this.lookup, zones.zones, {
      maxReplyBytes: s.max_reply_bytes,
      onSkippedKey: this.onSkippedPostfixKey,
      logger: this.logger,
      dane: this.daneLookup,
    });
    // The filters follow the default zone: their map names are not zones.
    const filters = { strictTesting: config.zones[DEFAULT_ZONE]!.strict_testing, requireTlsOtherwise: s.requiretls_otherwise };
    return withReservedMaps(
      { mxFilter: s.mx_filter_name, requireTls: s.requiretls_name },
      { mxFilter: mxFilterHandler(this.lookup, filters), requireTls: requireTlsHandler(this.lookup, filters) },
      policyMap,
    );
  }

  private async applyNow(next: Config): Promise<ApplyReport> {
    if (this.stopping) throw new Error('the daemon is stopping');
    const plan: ReloadPlan = this.current
      ? planReload(diffConfig(this.current, next))
      : { changed: [], reopenStore: true, rebuildCore: true, restartNeeded: [] };

    // Everything that can fail, before anything is switched.
    let store: PolicyStore | undefined;
    let core: Core | undefined;
    const pending: PendingListenerUpdate[] = [];
    const zones = await decideZones(next);
    try {
      if (plan.reopenStore) store = await openConfiguredStore(next, this.logger, this.metrics.storeObserver);
      if (plan.rebuildCore) core = buildCore(next, store ?? this.liveCore.store, this.logger, { observer: this.metrics.observer, daneObserver: this.metrics.daneObserver });
      // Before the switch, so that no answer of the new core overrides DANE for want of knowing.
      if (core) await detectDnssec(core, this.logger);
      for (const group of this.groups) pending.push(await group.prepare(next));
    } catch (err) {
      for (const p of pending) await p.abort();
      if (core) await core.fetcher.close();
      if (store) await store.close();
      throw err;
    }

    // The switch: nothing below can fail.
    const old = this.core;
    this.current = next;
    this.logger.level = next.log.level;
    this.postfixHandler = this.postfixHandlerOf(next, zones);
    for (const [zone, { on, why }] of Object.entries(zones.tlsrpt)) this.logger.info({ zone, tlsrpt: on, why }, 'TLSRPT attributes in Postfix replies');
    this.metrics.declareZones('socketmap', [...Object.keys(next.zones), next.socketmap.mx_filter_name, next.socketmap.requiretls_name]);
    this.socketmapOptions = socketmapOptionsOf(next);
    this.eximOptions = eximOptionsOf(next);
    if (core) this.core = core;
    const listeners: ApplyReport['listeners'] = {};
    this.groups.forEach((group, i) => {
      const p = pending[i]!;
      p.commit();
      if (p.opened.length > 0 || p.closed.length > 0) listeners[group.name] = { opened: p.opened, closed: p.closed };
    });
    if (core) this.retire(old, core, store !== undefined);
    return {
      changed: plan.changed,
      listeners,
      storeReopened: old !== undefined && store !== undefined,
      resolverRebuilt: old !== undefined && core !== undefined,
      restartNeeded: plan.restartNeeded,
    };
  }

  /** Stops the previous core (if any) in the background, and starts the new one once its writes are in. */
  private retire(old: Core | undefined, fresh: Core, storeReopened: boolean): void {
    if (!old) {
      startCore(fresh, this.logger);
      return;
    }
    if (storeReopened) {
      this.logger.info({ from: old.store.kind, to: fresh.store.kind }, 'cache store settings changed: new store opened, the old one is flushed and closed');
    } else {
      this.logger.info('resolver settings changed: new resolver; cached policies are kept in the store');
    }
    const retiring = stopCore(old, { closeStore: storeReopened }).catch((err: unknown) =>
      this.logger.warn({ err: (err as Error).message }, 'error while retiring the previous resolver'),
    );
    this.retiring.add(retiring);
    void retiring.finally(() => this.retiring.delete(retiring));
    // Policies the old resolver still has queued for the store are written before the new one reads it.
    void (storeReopened ? Promise.resolve() : retiring).then(() => startCore(fresh, this.logger));
  }

  private announce(): void {
    this.logger.info(
      {
        listen: this.socketmap.addresses,
        exim: this.exim.addresses,
        http: this.http.addresses,
        store: this.liveCore.store.kind,
      },
      'mta-sts-sidecar ready',
    );
    // Nothing here needs root once started (docs/reliability.md): say so, once, to whoever runs it as root.
    if (process.getuid?.() === 0) {
      this.logger.warn('running as root, which the daemon does not need: run it as an unprivileged user (the Debian package does)');
    }
  }
}

/** What every listener group takes from its own config section. */
interface ListenerSection {
  max_connections: number;
  unix_mode: number;
  shutdown_grace_ms: number;
  unix_owner?: string | null;
  unix_group?: string | null;
}

function listenerOptionsOf(s: ListenerSection): ListenerOptions {
  return {
    maxConnections: s.max_connections,
    unixMode: s.unix_mode,
    shutdownGraceMs: s.shutdown_grace_ms,
    unixOwnership: { owner: s.unix_owner ?? null, group: s.unix_group ?? null },
  };
}

function socketmapOptionsOf(config: Config): SocketmapServerOptions {
  const s = config.socketmap;
  return {
    ...listenerOptionsOf(s),
    maxRequestBytes: s.max_request_bytes,
    idleTimeoutMs: s.idle_timeout_ms,
    requestTimeoutMs: s.request_timeout_ms,
    maxReplyBytes: s.max_reply_bytes,
  };
}

function eximOptionsOf(config: Config): EximServerOptions {
  const e = config.exim;
  return { ...listenerOptionsOf(e), maxRequestBytes: e.max_request_bytes, requestTimeoutMs: e.request_timeout_ms };
}

function httpOptionsOf(config: Config): ListenerOptions {
  return listenerOptionsOf(config.http);
}
