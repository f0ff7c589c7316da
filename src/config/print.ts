/** A Config printed back as YAML in our format (`config check`): every key, defaults filled in. */
import { stringify } from 'yaml';
import { configKeys, type Config } from './schema.js';

/** Keys whose values read better in another notation than the parsed number. */
const OCTAL_MODES = new Set(['socketmap.unix_mode']);

/** YAML that validateConfig reads back to the same Config. */
export function configToYaml(config: Config): string {
  const out: Record<string, unknown> = {};
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  for (const [section, keys] of Object.entries(configKeys())) {
    const values: Record<string, unknown> = {};
    for (const key of keys) {
      const value = sections[section]?.[key];
      values[key] = OCTAL_MODES.has(`${section}.${key}`) && typeof value === 'number' ? `0${value.toString(8)}` : value;
    }
    out[section] = values;
  }
  out.zones = config.zones;
  return stringify(out, { lineWidth: 0 });
}
