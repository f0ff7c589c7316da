/** What a SIGHUP reload has to do, decided from the old and new config alone. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { defaultConfig } from '../../src/config/schema.js';
import { diffConfig, planReload, type ReloadPlan } from '../../src/app/reload.js';

const BASE = 'socketmap: { listen: ["tcp:127.0.0.1:8461"] }\nzones: { strict: { strict_testing: true } }\n';

describe('diffConfig + planReload', () => {
  it.each<[string, string, Partial<ReloadPlan>]>([
    ['nothing changed', BASE, { changed: [], reopenStore: false, rebuildCore: false, restartNeeded: [] }],
    ['the same zones in another order', 'socketmap: { listen: ["tcp:127.0.0.1:8461"] }\nzones: { strict: { strict_testing: true }, default: {} }\n', { changed: [] }],
    ['a zone setting', 'socketmap: { listen: ["tcp:127.0.0.1:8461"] }\nzones: { strict: { strict_testing: false } }\n', { changed: ['zones'], rebuildCore: false }],
    ['a new zone', 'socketmap: { listen: ["tcp:127.0.0.1:8461"] }\nzones: { strict: { strict_testing: true }, reporting: { tlsrpt: true } }\n', { changed: ['zones'] }],
    ['a listener added', BASE.replace('"tcp:127.0.0.1:8461"', '"tcp:127.0.0.1:8461", "unix:/run/x.sock"'), { changed: ['socketmap.listen'], rebuildCore: false }],
    ['the log level', BASE + 'log: { level: debug }\n', { changed: ['log.level'], rebuildCore: false, restartNeeded: [] }],
    ['the log format: only at restart', BASE + 'log: { format: pretty }\n', { changed: ['log.format'], restartNeeded: ['log.format'] }],
    ['a resolver timing: new resolver, same store', BASE + 'resolver: { negative_ttl_ms: 1000 }\n', { changed: ['resolver.negative_ttl_ms'], rebuildCore: true, reopenStore: false }],
    ['DNS servers: new resolver', BASE + 'dns: { servers: ["192.0.2.1"] }\n', { changed: ['dns.servers'], rebuildCore: true, reopenStore: false }],
    ['fetch settings: new resolver', BASE + 'fetch: { timeout_ms: 2000 }\n', { changed: ['fetch.timeout_ms'], rebuildCore: true }],
    ['the store path: new store and resolver', BASE + 'cache: { path: /tmp/other.db }\n', { changed: ['cache.path'], rebuildCore: true, reopenStore: true }],
    ['the store kind', BASE + 'cache: { store: memory }\n', { changed: ['cache.store'], reopenStore: true }],
    ['the metrics listener turned off', BASE + 'http: { listen: [] }\n', { changed: ['http.listen'], rebuildCore: false }],
    ['several at once', BASE + 'log: { level: warn }\ncache: { store: memory }\n', { changed: ['cache.store', 'log.level'], reopenStore: true }],
  ])('%s', (_rule, nextYaml, want) => {
    const plan = planReload(diffConfig(parseConfig(BASE), parseConfig(nextYaml)));
    expect({ ...plan, changed: [...plan.changed].sort() }).toMatchObject(want);
  });

  it('compares every section, including ones it has no special rule for', () => {
    const a = defaultConfig();
    const b = defaultConfig();
    b.exim.listen = ['tcp:127.0.0.1:8463'];
    b.socketmap.idle_timeout_ms = 1000;
    expect(diffConfig(a, b).sort()).toEqual(['exim.listen', 'socketmap.idle_timeout_ms']);
  });
});
