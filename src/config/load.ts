/** Read a YAML config file into a validated Config. Only I/O here is reading the one file. */
import { readFileSync } from 'node:fs';
import { parse, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.js';
import { detectFormat, explainInTheirTerms, migrateResolverConfig, RESOLVER_FORMAT, type ConfigFormat } from './migrate-resolver.js';
import { currentRuntime, type Runtime } from './cache-path.js';
import { defaultConfig, validateConfig, type Config } from './schema.js';

/** A validated config and what reading it had to say. */
export interface LoadedConfig {
  config: Config;
  /** `postfix-mta-sts-resolver` when the file was that daemon's mta-sts-daemon.yml (converted). */
  format: ConfigFormat;
  /** Options that were converted with a change or have no equivalent (`key: why`); empty for our format. */
  warnings: string[];
  /** The file read, or undefined for the embedded defaults. */
  file: string | undefined;
}

export function loadConfig(file: string | undefined): Config {
  return readConfig(file).config;
}

/** loadConfig, keeping the detected format and the migration warnings (serve, config check). */
export function readConfig(file: string | undefined): LoadedConfig {
  if (file === undefined) return { config: defaultConfig(), format: 'mta-sts-sidecar', warnings: [], file };
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return { ...parseConfigSource(source, file), file };
  } catch (err) {
    // Name the file too: an operator may have several (packaged default, override, migration).
    if (err instanceof ConfigError && !err.message.startsWith(file)) throw new ConfigError('', `${file}: ${err.message}`);
    throw err;
  }
}

/** `runtime`: where the daemon runs, which decides the default cache path (src/config/cache-path.ts). */
export function parseConfig(source: string, file = 'config', runtime: Runtime = currentRuntime()): Config {
  return parseConfigSource(source, file, runtime).config;
}

/** Parses either format; see src/config/migrate-resolver.ts for postfix-mta-sts-resolver's. */
export function parseConfigSource(source: string, file = 'config', runtime: Runtime = currentRuntime()): Omit<LoadedConfig, 'file'> {
  const raw = parseYaml(source, file, '1.2');
  const format = detectFormat(raw);
  if (format !== RESOLVER_FORMAT) return { config: validateConfig(raw, runtime), format, warnings: [] };
  // postfix-mta-sts-resolver reads its file with PyYAML, which speaks YAML 1.1: `mode: 0666` is octal
  // there (438), and yes/no/on/off are booleans. Read it the way its author meant it.
  const theirs = parseYaml(source, file, '1.1') as Record<string, unknown>;
  const migration = migrateResolverConfig(theirs);
  try {
    return { config: validateConfig(migration.raw, runtime), format, warnings: migration.warnings };
  } catch (err) {
    if (err instanceof ConfigError) throw explainInTheirTerms(err, migration.origin);
    throw err;
  }
}

function parseYaml(source: string, file: string, version: '1.1' | '1.2'): unknown {
  try {
    return parse(source, { uniqueKeys: true, version });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}` : '';
    throw new ConfigError('', `${file}${where}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}
