/**
 * The config's documentation, derived from the schema: the README table, the key sections of
 * mta-sts-sidecar.yml(5) (docs/mta-sts-sidecar.yml.5.md, go-md2man markdown) and the Debian conffile
 * (packaging/config.yml). test/unit/config-docs.test.ts fails when a committed file differs from what
 * these functions make, and rewrites them with UPDATE_CONFIG_DOCS=1.
 */
import { parse } from 'yaml';
import { SYSTEM_STATE_DIR, type Runtime } from './cache-path.js';
import { DEFAULT_ZONE, defaultOf, isAutoDefault, SCHEMA, ZONE_SCHEMA, type KeySpec, type SectionSpec } from './schema.js';

/** Where the packaged service runs (packaging/systemd: User=mta-sts-sidecar, StateDirectory=). */
export const PACKAGED_RUNTIME: Runtime = { env: { STATE_DIRECTORY: SYSTEM_STATE_DIR }, uid: undefined, home: '/nonexistent' };

/** One documented key. */
export interface KeyDoc {
  /** `socketmap.listen`; zone settings as `zones.NAME.strict_testing`. */
  key: string;
  section: string;
  spec: KeySpec<unknown>;
}

const UNITS = { ms: 'milliseconds', bytes: 'bytes' } as const;

/** Every key, in schema order, zone settings after the cache section (as the conffile has them). */
export function configReference(): KeyDoc[] {
  const out: KeyDoc[] = [];
  for (const [name, spec] of sectionsInOrder()) {
    const prefix = name === 'zones' ? 'zones.NAME' : name;
    for (const [k, keySpec] of Object.entries(spec.keys)) out.push({ key: `${prefix}.${k}`, section: name, spec: keySpec });
  }
  return out;
}

function sectionsInOrder(): Array<[string, SectionSpec]> {
  const all = Object.entries(SCHEMA as unknown as Record<string, SectionSpec>);
  const at = all.findIndex(([name]) => name === 'cache') + 1;
  return [...all.slice(0, at), ['zones', ZONE_SCHEMA], ...all.slice(at)];
}

/** A value as written inline in YAML: plain where it reads back the same, else JSON (valid YAML). */
export function inlineYaml(value: unknown): string {
  if (typeof value === 'string' && /^[^\s"'#&*!|>%@`{}[\],:]/.test(value) && !/: | #/.test(value) && parse(value) === value) return value;
  return value === null ? 'null' : JSON.stringify(value);
}

/** The default as the file would write it, or undefined when it depends on where the daemon runs. */
function defaultYaml(spec: KeySpec<unknown>, runtime?: Runtime): string | undefined {
  if (isAutoDefault(spec.default) && runtime === undefined) return undefined;
  const value = defaultOf(spec, runtime ?? PACKAGED_RUNTIME);
  return inlineYaml(spec.type.toYaml && value !== null ? spec.type.toYaml(value) : value);
}

function sentence(s: string): string {
  const t = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

function values(spec: KeySpec<unknown>): string {
  return spec.type.unit ? `${spec.type.accepts} (${UNITS[spec.type.unit]})` : spec.type.accepts;
}

function autoText(spec: KeySpec<unknown>): string {
  return isAutoDefault(spec.default) ? spec.default.text : '';
}

// ---------- README ----------

/** The README's configuration table (markdown). */
export function readmeTable(): string {
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  const code = (s: string): string => `\`${s}\``;
  const rows = configReference().map(({ key, spec }) => {
    const def = defaultYaml(spec);
    return `| ${code(key)} | ${cell(def === undefined ? autoText(spec) : code(def))} | ${cell(values(spec))} | ${cell(sentence(spec.doc))} |`;
  });
  return ['| Key | Default | Values | What it does |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}

// ---------- man page ----------

const MAN_WIDTH = 100;

/** `backticks` → **bold** (go-md2man). */
function manText(s: string): string {
  return s.replace(/`([^`]+)`/g, '**$1**');
}

function wrap(text: string, width: number, first: string, rest: string): string {
  const lines: string[] = [];
  let line = first;
  for (const word of text.split(' ')) {
    const prefix = line === first || line === rest ? '' : ' ';
    if (line.length + prefix.length + word.length > width && line !== first && line !== rest) {
      lines.push(line);
      line = rest + word;
    } else {
      line += prefix + word;
    }
  }
  lines.push(line);
  return lines.join('\n');
}

/** The key sections of mta-sts-sidecar.yml(5): from `# SOCKETMAP` up to `# EXAMPLE`. */
export function manPageSections(): string {
  const parts: string[] = [];
  for (const [name, spec] of sectionsInOrder()) {
    parts.push(`# ${name.toUpperCase()}`, '', wrap(manText([spec.doc, spec.more].filter(Boolean).join(' ')), MAN_WIDTH, '', ''), '');
    for (const [k, keySpec] of Object.entries(spec.keys)) {
      const heading = name === 'zones' ? `**zones.**_NAME_**.${k}**` : `**${name}.${k}**`;
      const def = defaultYaml(keySpec);
      const body = [
        sentence(keySpec.doc),
        ...(keySpec.more ? [keySpec.more] : []),
        ...(def === undefined ? [`Default: ${autoText(keySpec)}.`] : []),
        `Values: ${values(keySpec)}.`,
      ].join(' ');
      parts.push(`${heading} (default ${def === undefined ? 'chosen at start' : `**${def}**`})`, wrap(manText(body), MAN_WIDTH, ': ', '  '), '');
    }
  }
  return parts.join('\n');
}

// ---------- Debian conffile ----------

const CONFFILE_HEADER = `# /etc/mta-sts-sidecar/config.yml: mta-sts-sidecar's configuration (see mta-sts-sidecar.yml(5)).
#
# Every key is optional and shown here, commented out, with its built-in default: uncomment a line
# and change it to override that one setting. Unknown keys are an error that names the key.
# Apply changes with \`systemctl reload mta-sts-sidecar\` (SIGHUP; log.format needs a restart).
# Check a change first with \`mta-sts-sidecar config check --config /etc/mta-sts-sidecar/config.yml\`.
# Durations are in milliseconds (*_ms), sizes in bytes. A list may be written as one value.
# (Generated from src/config/schema.ts: edit there, not here.)
`;
const COMMENT_COLUMN = 38;
const CONFFILE_WIDTH = 110;

/** packaging/config.yml: every key commented out with its default under the packaged service. */
export function conffile(): string {
  const plain = (s: string): string => s.replace(/`([^`]+)`/g, '$1');
  const out: string[] = [CONFFILE_HEADER];
  for (const [name, spec] of sectionsInOrder()) {
    out.push(wrap(plain(spec.doc), CONFFILE_WIDTH, '# ', '# '), `#${name}:`);
    const indent = name === 'zones' ? '    ' : '  ';
    if (name === 'zones') out.push(`#  ${DEFAULT_ZONE}:`);
    for (const [k, keySpec] of Object.entries(spec.keys)) {
      const setting = `#${indent}${k}: ${defaultYaml(keySpec, PACKAGED_RUNTIME)!}`;
      const auto = autoText(keySpec);
      const comment = plain(keySpec.doc) + (auto ? `; default: ${auto}` : '');
      const oneLine = `${setting.padEnd(COMMENT_COLUMN - 1)} # ${comment}`;
      // A comment that does not fit goes above its setting, as a YAML comment once uncommented.
      if (oneLine.length <= CONFFILE_WIDTH) out.push(oneLine);
      else out.push(wrap(comment, CONFFILE_WIDTH, `#${indent}# `, `#${indent}# `), setting);
    }
    out.push('');
  }
  return out.join('\n');
}
