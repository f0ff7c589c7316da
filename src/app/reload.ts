/**
 * What a reload (SIGHUP) changes, from the difference between the running config and the next one;
 * src/app/daemon.ts applies it.
 */
import type { Config } from '../config/schema.js';

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

/** JSON with object keys sorted, so that key order in the YAML does not count as a change. */
function stable(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : value,
  );
}
