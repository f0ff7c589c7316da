/**
 * The packaged conffile (packaging/config.yml, installed as /etc/mta-sts-sidecar/config.yml) and the
 * config man page (docs/mta-sts-sidecar.yml.5.md) against the schema: every key is there, commented
 * out, showing its real default, and documented. When a key is added to src/config, these fail until
 * the conffile and the man page say what it is.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { defaultConfig, validateConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CONFFILE = readFileSync(join(ROOT, 'packaging/config.yml'), 'utf8');
const MAN5 = readFileSync(join(ROOT, 'docs/mta-sts-sidecar.yml.5.md'), 'utf8');

/**
 * The conffile's convention: a commented-out setting is `#` directly followed by YAML (`#cache:`) or
 * by two or more spaces (`#  store: sqlite`); commentary is `# ` and then text.
 */
function uncomment(text: string): string {
  return text
    .split('\n')
    .filter((line) => !/^#( \S|$)/.test(line))
    .map((line) => line.replace(/^#(?=\S| {2})/, ''))
    .join('\n');
}

/**
 * `section.key` for every setting the config file accepts; zone settings as `zones.default.key`.
 * (defaultConfig() also carries internal tunables that the file does not accept: probing keeps them out.)
 */
function schemaKeys(): string[] {
  const keys: string[] = [];
  for (const [section, value] of Object.entries(defaultConfig())) {
    if (section === 'zones') {
      for (const key of Object.keys(value.default)) keys.push(`zones.default.${key}`);
      continue;
    }
    for (const [key, v] of Object.entries(value)) {
      try {
        validateConfig({ [section]: { [key]: v } });
        keys.push(`${section}.${key}`);
      } catch (err) {
        if (!(err instanceof ConfigError) || !/unknown key/.test(err.message)) throw err;
      }
    }
  }
  return keys.sort();
}

function yamlKeys(raw: Record<string, Record<string, unknown>>): string[] {
  const keys: string[] = [];
  for (const [section, value] of Object.entries(raw)) {
    if (section === 'zones') {
      for (const [zone, settings] of Object.entries(value)) {
        for (const key of Object.keys(settings as object)) keys.push(`zones.${zone}.${key}`);
      }
    } else {
      for (const key of Object.keys(value)) keys.push(`${section}.${key}`);
    }
  }
  return keys.sort();
}

describe('packaged config file', () => {
  it('as shipped, with everything commented out, is the built-in defaults', () => {
    expect(parseConfig(CONFFILE, 'packaging/config.yml')).toEqual(defaultConfig());
    expect(parse(CONFFILE)).toBeNull();
  });

  it('lists every key of the schema, and nothing else', () => {
    const raw = parse(uncomment(CONFFILE)) as Record<string, Record<string, unknown>>;
    const missing = schemaKeys().filter((k) => !yamlKeys(raw).includes(k));
    const unknown = yamlKeys(raw).filter((k) => !schemaKeys().includes(k));
    expect({ missing, unknown }, 'packaging/config.yml: add missing keys commented out, with their defaults').toEqual({
      missing: [],
      unknown: [],
    });
  });

  it('shows the real default of every key: uncommented, it is the defaults again', () => {
    expect(parseConfig(uncomment(CONFFILE), 'packaging/config.yml (uncommented)')).toEqual(defaultConfig());
  });

  it('changing one commented value and uncommenting it changes exactly that setting', () => {
    // Guards the uncomment rule itself: it must really turn the shipped lines into settings.
    const edited = uncomment(CONFFILE.replace('#  timeout_ms: 10000', '#  timeout_ms: 4321'));
    const config = parseConfig(edited);
    expect(config.fetch.timeout_ms).toBe(4321);
    expect({ ...config, fetch: { ...config.fetch, timeout_ms: 10000 } }).toEqual(defaultConfig());
  });
});

describe('mta-sts-sidecar.yml(5)', () => {
  it('documents every key with its default', () => {
    const defaults = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
    const undocumented: string[] = [];
    for (const key of schemaKeys()) {
      const [section, a, b] = key.split('.') as [string, string, string | undefined];
      // zone settings are written zones.NAME.key in the page
      const heading = section === 'zones' ? `**zones.**_NAME_**.${b}**` : `**${key}**`;
      const value = section === 'zones' ? (defaults.zones!.default as Record<string, unknown>)[b!] : defaults[section]![a];
      const shown = typeof value === 'number' && key.endsWith('unix_mode') ? `"0${value.toString(8)}"` : Array.isArray(value) ? JSON.stringify(value) : String(value);
      if (!MAN5.includes(`${heading} (default **${shown}**)`)) undocumented.push(`${key} (default ${shown})`);
    }
    expect(undocumented, 'docs/mta-sts-sidecar.yml.5.md: add a "**key** (default **value**)" entry').toEqual([]);
  });
});
