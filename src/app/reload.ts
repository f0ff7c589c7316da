/**
 * SIGHUP: apply a new config to the running daemon without dropping connections or the cache.
 *
 * What changes how:
 * - log.level, zones, per-connection limits: switched at once (zones apply to open connections too);
 * - listeners (socketmap, exim, http): new ones bound, removed ones closed (their connections finish
 *   their replies first), unchanged ones untouched with their connections;
 * - resolver, dns, fetch: a new resolver over the same store; its hot tier is refilled from the store, so
 *   cached policies stay (remembered absences and failure backoffs start afresh);
 * - cache (store kind, path, URL): the new store is opened, the old one flushed and closed; the cache
 *   starts from what the new store holds;
 * - log.format: needs a restart (reported).
 *
 * All or nothing: everything that can fail (opening a store, reading fetch.ca_file, binding) happens
 * before anything is switched; on failure the new pieces are closed and the running config stays.
 */
import type { Logger } from 'pino';
import type { PolicyStore } from '../cache/store.js';
import type { Config } from '../config/schema.js';
import { startCore, stopCore, type Core } from './core.js';
import type { PendingListenerUpdate } from '../server/listen.js';

/** Sections whose change needs a new resolver (and, for cache, a new store). */
const CORE_SECTIONS = ['resolver', 'dns', 'fetch', 'cache'];
/** Settings only a restart applies. */
const RESTART_ONLY = ['log.format'];

export interface ReloadPlan {
  /** Every changed setting, `section.key` (or `zones`). */
  changed: string[];
  reopenStore: boolean;
  rebuildCore: boolean;
  restartNeeded: string[];
}

export interface ReloadReport {
  changed: string[];
  /** Per listener group (socketmap, exim, http): what was opened and closed. */
  listeners: Record<string, { opened: string[]; closed: string[] }>;
  storeReopened: boolean;
  resolverRebuilt: boolean;
  restartNeeded: string[];
}

/** A group of listeners a reload may change; prepare binds what `next` adds (see Listeners.prepareUpdate). */
export interface ListenerGroup {
  readonly name: string;
  prepare(next: Config): Promise<PendingListenerUpdate>;
}

/** What the daemon exposes to a reload (src/app/daemon.ts implements it). */
export interface ReloadTarget {
  readonly config: Config;
  readonly core: Core;
  /** A store handed in by the caller (tests) is never replaced. */
  readonly storeFixed: boolean;
  readonly groups: readonly ListenerGroup[];
  openStore(next: Config): Promise<PolicyStore>;
  buildCore(next: Config, store: PolicyStore): Core;
  /** Switches config-derived state (log level, zones, options) and, if given, the core. Cannot fail. */
  commit(next: Config, core: Core | undefined): void;
  /** Work that must finish before the daemon has closed (a retired core). */
  track(work: Promise<void>): void;
}

/** The settings that differ, as `section.key` paths; `zones` as a whole. */
export function diffConfig(old: Config, next: Config): string[] {
  const changed: string[] = [];
  const a = old as unknown as Record<string, Record<string, unknown>>;
  const b = next as unknown as Record<string, Record<string, unknown>>;
  for (const section of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (section === 'zones') {
      if (stable(a.zones) !== stable(b.zones)) changed.push('zones');
      continue;
    }
    const x = a[section] ?? {};
    const y = b[section] ?? {};
    for (const key of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (stable(x[key]) !== stable(y[key])) changed.push(`${section}.${key}`);
    }
  }
  return changed;
}

export function planReload(changed: string[]): ReloadPlan {
  const section = (path: string) => path.split('.')[0]!;
  return {
    changed,
    reopenStore: changed.some((p) => section(p) === 'cache'),
    rebuildCore: changed.some((p) => CORE_SECTIONS.includes(section(p))),
    restartNeeded: changed.filter((p) => RESTART_ONLY.includes(p)),
  };
}

/** Applies `next` to `target`; rejects (with nothing changed) when a part cannot be applied. */
export async function applyReload(target: ReloadTarget, next: Config, logger: Logger): Promise<ReloadReport> {
  const plan = planReload(diffConfig(target.config, next));
  const reopen = plan.reopenStore && !target.storeFixed;
  let store: PolicyStore | undefined;
  let core: Core | undefined;
  const pending: Array<[string, PendingListenerUpdate]> = [];
  try {
    if (reopen) store = await target.openStore(next);
    if (plan.rebuildCore) core = target.buildCore(next, store ?? target.core.store);
    for (const group of target.groups) pending.push([group.name, await group.prepare(next)]);
  } catch (err) {
    for (const [, p] of pending) await p.abort();
    if (core) await core.fetcher.close();
    if (store) await store.close();
    throw err;
  }

  const old = target.core;
  target.commit(next, core);
  const listeners: ReloadReport['listeners'] = {};
  for (const [name, p] of pending) {
    p.commit();
    if (p.opened.length > 0 || p.closed.length > 0) listeners[name] = { opened: p.opened, closed: p.closed };
  }
  if (core) {
    if (store) {
      logger.info(
        { from: old.store.kind, to: store.kind },
        'cache store settings changed: new store opened, the old one is flushed and closed',
      );
    } else {
      logger.info('resolver settings changed: new resolver; cached policies are kept in the store');
    }
    const retiring = stopCore(old, { closeStore: store !== undefined }).catch((err: unknown) =>
      logger.warn({ err: (err as Error).message }, 'error while retiring the previous resolver'),
    );
    target.track(retiring);
    const fresh = core;
    // Policies the old resolver still has queued for the store are written before the new one reads it.
    void (store ? Promise.resolve() : retiring).then(() => startCore(fresh, logger));
  }
  return {
    changed: plan.changed,
    listeners,
    storeReopened: store !== undefined,
    resolverRebuilt: core !== undefined,
    restartNeeded: plan.restartNeeded,
  };
}

/** JSON with object keys sorted, so that key order in the YAML does not count as a change. */
function stable(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : value,
  );
}
