/** A Config printed back as YAML in our format (`config check`): every key, in schema order. */
import { stringify } from 'yaml';
import { SCHEMA, ZONE_SCHEMA, type Config, type SectionSpec } from './schema.js';

/** YAML that validateConfig reads back to the same Config (lists as lists, modes as "0660"). */
export function configToYaml(config: Config): string {
  const out: Record<string, unknown> = {};
  const values = config as unknown as Record<string, Record<string, unknown>>;
  for (const [name, spec] of Object.entries(SCHEMA as unknown as Record<string, SectionSpec>)) {
    out[name] = sectionToYaml(spec, values[name] ?? {});
  }
  out.zones = Object.fromEntries(
    Object.entries(config.zones).map(([zone, settings]) => [zone, sectionToYaml(ZONE_SCHEMA, settings as unknown as Record<string, unknown>)]),
  );
  return stringify(out, { lineWidth: 0 });
}

function sectionToYaml(spec: SectionSpec, values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, keySpec] of Object.entries(spec.keys)) {
    const value = values[key];
    out[key] = keySpec.type.toYaml && value !== null && value !== undefined ? keySpec.type.toYaml(value) : value;
  }
  return out;
}
