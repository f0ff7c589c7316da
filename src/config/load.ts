/** Read a YAML config file into a validated Config. Only I/O here is reading the one file. */
import { readFileSync } from 'node:fs';
import { parse, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.js';
import { defaultConfig, validateConfig, type Config } from './schema.js';

export function loadConfig(file: string | undefined): Config {
  if (file === undefined) return defaultConfig();
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseConfig(source, file);
  } catch (err) {
    // Name the file too: an operator may have several (packaged default, override, migration).
    if (err instanceof ConfigError && err.path !== '') throw new ConfigError('', `${file}: ${err.message}`);
    throw err;
  }
}

export function parseConfig(source: string, file = 'config'): Config {
  let raw: unknown;
  try {
    raw = parse(source, { uniqueKeys: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}` : '';
    throw new ConfigError('', `${file}${where}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateConfig(raw);
}
