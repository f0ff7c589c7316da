/**
 * `mta-sts-sidecar config check [--config FILE]`: validate a config (ours or postfix-mta-sts-resolver's)
 * and print the effective settings, defaults filled in and lists normalised, as YAML in our format, with
 * secrets masked. Exit 0 and the YAML on stdout (warnings about options not carried over on stderr),
 * or exit 1 and the one-line error: including a cache file this user could not create or write, which
 * `serve` would refuse too.
 */
import { checkCachePathWritable, currentRuntime, defaultCachePath } from '../config/cache-path.js';
import { readConfig } from '../config/load.js';
import { configToYaml } from '../config/print.js';
import { redactConfig } from '../config/schema.js';
import { decideZones } from '../app/zones.js';

export async function runConfigCheck(file: string | undefined, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let loaded;
  try {
    loaded = readConfig(file);
    if (loaded.config.cache.store === 'sqlite') checkCachePathWritable(loaded.config.cache.path, { create: false });
  } catch (e) {
    err(`mta-sts-sidecar: ${(e as Error).message}`);
    return 1;
  }
  for (const warning of loaded.warnings) err(`mta-sts-sidecar: warning: ${warning}`);
  const source = file === undefined ? 'embedded defaults' : file;
  const chosen = defaultCachePath(currentRuntime());
  const header = [
    `# mta-sts-sidecar effective configuration: ${source}`,
    ...(loaded.format === 'mta-sts-sidecar' ? [] : [`# converted from ${loaded.format} format (docs/migration.md)`]),
    ...(loaded.config.cache.path === chosen.path ? [`# cache.path: the default here (${chosen.why})`] : []),
    // `tlsrpt: auto` is decided by the local Postfix: say how it comes out here.
    ...Object.entries((await decideZones(loaded.config)).tlsrpt).map(([zone, d]) => `# zones.${zone}.tlsrpt: ${d.on ? 'on' : 'off'} (${d.why})`),
  ];
  out(header.join('\n') + '\n' + configToYaml(redactConfig(loaded.config)));
  return 0;
}
