/**
 * `mta-sts-sidecar config check [--config FILE]`: validate a config (ours or postfix-mta-sts-resolver's)
 * and print the effective settings, defaults filled in, as YAML in our format. Exit 0 and the YAML on
 * stdout (warnings about options not carried over on stderr), or exit 1 and the one-line error.
 */
import { readConfig } from '../config/load.js';
import { configToYaml } from '../config/print.js';

export function runConfigCheck(file: string | undefined, out: (s: string) => void, err: (s: string) => void): number {
  let loaded;
  try {
    loaded = readConfig(file);
  } catch (e) {
    err(`mta-sts-sidecar: ${(e as Error).message}`);
    return 1;
  }
  for (const warning of loaded.warnings) err(`mta-sts-sidecar: warning: ${warning}`);
  const source = file === undefined ? 'embedded defaults' : file;
  const header = [
    `# mta-sts-sidecar effective configuration: ${source}`,
    ...(loaded.format === 'mta-sts-sidecar' ? [] : [`# converted from ${loaded.format} format (docs/migration.md)`]),
  ];
  out(header.join('\n') + '\n' + configToYaml(loaded.config));
  return 0;
}
