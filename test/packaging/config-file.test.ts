/**
 * The packaged conffile (packaging/config.yml, installed as /etc/mta-sts-sidecar/config.yml) and the
 * config man page (docs/mta-sts-sidecar.yml.5.md) against the schema: every key is there, commented
 * out, showing its real default under the packaged service, and documented. Both are generated from
 * src/config/schema.ts (test/unit/config-docs.test.ts); these check what the generator made, by
 * reading it back as an operator's YAML parser and a reader would.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PACKAGED_RUNTIME } from '../../src/config/docs.js';
import { parseConfig } from '../../src/config/load.js';
import { configKeys, defaultConfig, ZONE_SCHEMA } from '../../src/config/schema.js';

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

/** `section.key` for every setting the config file accepts; zone settings as `zones.default.key`. */
function schemaKeys(): string[] {
  const keys = Object.entries(configKeys()).flatMap(([section, names]) => names.map((k) => `${section}.${k}`));
  for (const key of Object.keys(ZONE_SCHEMA.keys)) keys.push(`zones.default.${key}`);
  return keys.sort();
}

/** The conffile read as the packaged service reads it (StateDirectory= decides the cache path). */
const asPackaged = (text: string, file = 'packaging/config.yml') => parseConfig(text, file, PACKAGED_RUNTIME);
const packagedDefaults = () => defaultConfig(PACKAGED_RUNTIME);

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
    expect(asPackaged(CONFFILE)).toEqual(packagedDefaults());
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
    expect(asPackaged(uncomment(CONFFILE), 'packaging/config.yml (uncommented)')).toEqual(packagedDefaults());
  });

  it('changing one commented value and uncommenting it changes exactly that setting', () => {
    // Guards the uncomment rule itself: it must really turn the shipped lines into settings.
    const edited = uncomment(CONFFILE.replace('#  timeout_ms: 10000', '#  timeout_ms: 4321'));
    const config = asPackaged(edited);
    expect(config.fetch.timeout_ms).toBe(4321);
    expect({ ...config, fetch: { ...config.fetch, timeout_ms: 10000 } }).toEqual(packagedDefaults());
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
      // The cache path depends on where the daemon runs: the page says how it is chosen instead.
      const entry = key === 'cache.path' ? `${heading} (default chosen at start)` : `${heading} (default **${shown}**)`;
      if (!MAN5.includes(entry)) undocumented.push(`${key} (default ${shown})`);
    }
    expect(undocumented, 'docs/mta-sts-sidecar.yml.5.md: add a "**key** (default **value**)" entry').toEqual([]);
  });
});
