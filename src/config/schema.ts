/**
 * The YAML config, validated strictly: an unknown key or a wrong type is a ConfigError naming the key
 * path (`fetch.timeout_ms: must be a whole number of milliseconds`). Defaults come from DEFAULTS.
 */
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';

export interface ZoneConfig {
  strict_testing: boolean;
  tlsrpt: boolean;
}

export interface Config {
  socketmap: {
    listen: string[];
    unix_mode: number;
    /** Owner / group of unix socket files: a name or a numeric id; null keeps the daemon's own. */
    unix_owner: string | null;
    unix_group: string | null;
    max_request_bytes: number;
    max_connections: number;
    idle_timeout_ms: number;
    request_timeout_ms: number;
    shutdown_grace_ms: number;
    /** Must match Postfix's socketmap_max_reply: a longer reply is an error on the Postfix side. */
    max_reply_bytes: number;
  };
  /** The Exim line protocol (src/server/exim.ts); no listener while `listen` is empty. */
  exim: {
    listen: string[];
    unix_mode: number;
    unix_owner: string | null;
    unix_group: string | null;
    max_request_bytes: number;
    max_connections: number;
    request_timeout_ms: number;
  };
  resolver: {
    answer_deadline_ms: number;
    negative_ttl_ms: number;
    failure_retry_ms: number;
    recheck_interval_ms: number;
    memory_entries: number;
    max_concurrent_fetches: number;
    min_fetch_interval_ms: number;
    dns_failure_ttl_ms: number;
    refresh_interval_ms: number;
    refetch_at_fraction: number;
    refresh_tick_ms: number;
    refresh_batch: number;
    refresh_concurrency: number;
    failure_backoff_max_ms: number;
    /** Pending resolutions at once; beyond it, answer from cache or NOTFOUND at once. */
    max_pending: number;
  };
  dns: { servers: string[]; timeout_ms: number; tries: number };
  fetch: {
    ca_file: string | null;
    allow_private_addresses: boolean;
    timeout_ms: number;
    max_bytes: number;
    user_agent: string;
  };
  cache: {
    store: 'sqlite' | 'memory' | 'redis';
    path: string;
    redis_url: string;
    /** Hot (in-process) tier size bound, in bytes of policy text. */
    memory_max_bytes: number;
    /** `memory` / `sqlite` store size bound, in bytes. */
    store_max_bytes: number;
    /** Expired entries are pruned from every store this often. */
    prune_interval_ms: number;
  };
  /** Zone name (the socketmap map name) → settings; `default` applies to unknown names. */
  zones: Record<string, ZoneConfig>;
  log: { level: string; format: 'json' | 'pretty' };
  /** The metrics and health endpoint (/metrics, /healthz, /readyz); an empty list turns it off. */
  http: { listen: string[]; max_connections: number };
}

type Check = (value: unknown, path: string) => unknown;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const STORES = ['sqlite', 'memory', 'redis'];
const LOG_FORMATS = ['json', 'pretty'];

const wholeNumber =
  (min: number, max = Number.MAX_SAFE_INTEGER, unit = ''): Check =>
  (v, path) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(path, `must be a whole number${unit} from ${min} to ${max}, got ${show(v)}`);
    }
    return v;
  };
const ms = (min: number) => wholeNumber(min, 24 * 3600_000, ' of milliseconds');
const fraction: Check = (v, path) => {
  if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new ConfigError(path, `must be a number above 0 and at most 1, got ${show(v)}`);
  return v;
};
const bool: Check = (v, path) => {
  if (typeof v !== 'boolean') throw new ConfigError(path, `must be true or false, got ${show(v)}`);
  return v;
};
const text: Check = (v, path) => {
  if (typeof v !== 'string' || v === '') throw new ConfigError(path, `must be a non-empty string, got ${show(v)}`);
  return v;
};
const oneOf =
  (choices: string[]): Check =>
  (v, path) => {
    if (typeof v !== 'string' || !choices.includes(v)) {
      throw new ConfigError(path, `must be one of ${choices.join(', ')}, got ${show(v)}`);
    }
    return v;
  };
const list =
  (item: Check, minItems = 0): Check =>
  (v, path) => {
    if (!Array.isArray(v)) throw new ConfigError(path, `must be a list, got ${show(v)}`);
    if (v.length < minItems) throw new ConfigError(path, `must have at least ${minItems} item(s)`);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
const nullable =
  (inner: Check): Check =>
  (v, path) =>
    v === null ? null : inner(v, path);
/** Octal file mode, written `"0660"` or `0o660`/432 in YAML. */
const fileMode: Check = (v, path) => {
  if (typeof v === 'string' && /^0?[0-7]{3}$/.test(v)) return parseInt(v, 8);
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0o777) return v;
  throw new ConfigError(path, `must be an octal mode such as "0660", got ${show(v)}`);
};
/** A user or group: a name as in passwd(5) / group(5), or a numeric id (YAML number or string). */
const userOrGroup: Check = (v, path) => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xfffffffe) return String(v);
  if (typeof v === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(v)) return v;
  throw new ConfigError(path, `must be a user or group name, or a numeric id, got ${show(v)}`);
};
const listenSpec: Check = (v, path) => {
  const s = text(v, path) as string;
  if (!/^(tcp:(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):\d{1,5}|unix:\/\S+)$/.test(s)) {
    throw new ConfigError(path, `must be tcp:HOST:PORT or unix:/absolute/path, got ${show(v)}`);
  }
  return s;
};
const dnsServer: Check = (v, path) => {
  const s = text(v, path) as string;
  if (!/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|[0-9a-fA-F:]+|\[[0-9a-fA-F:]+\]:\d{1,5})$/.test(s)) {
    throw new ConfigError(path, `must be an IP address or IP:PORT, got ${show(v)}`);
  }
  return s;
};

const SECTIONS: Record<string, Record<string, Check>> = {
  socketmap: {
    listen: list(listenSpec, 1),
    unix_mode: fileMode,
    unix_owner: nullable(userOrGroup),
    unix_group: nullable(userOrGroup),
    max_request_bytes: wholeNumber(64, 1 << 20, ' of bytes'),
    max_connections: wholeNumber(1, 1_000_000),
    idle_timeout_ms: ms(100),
    request_timeout_ms: ms(100),
    shutdown_grace_ms: wholeNumber(0, 600_000, ' of milliseconds'),
    max_reply_bytes: wholeNumber(1024, 1 << 30, ' of bytes'),
  },
  exim: {
    listen: list(listenSpec),
    unix_mode: fileMode,
    unix_owner: nullable(userOrGroup),
    unix_group: nullable(userOrGroup),
    max_request_bytes: wholeNumber(64, 1 << 20, ' of bytes'),
    max_connections: wholeNumber(1, 1_000_000),
    request_timeout_ms: ms(100),
  },
  resolver: {
    answer_deadline_ms: ms(10),
    negative_ttl_ms: ms(0),
    failure_retry_ms: ms(0),
    recheck_interval_ms: ms(0),
    memory_entries: wholeNumber(1, 100_000_000),
    max_concurrent_fetches: wholeNumber(1, 10_000),
    min_fetch_interval_ms: ms(0),
    dns_failure_ttl_ms: ms(0),
    refresh_interval_ms: ms(60_000),
    refetch_at_fraction: fraction,
    refresh_tick_ms: ms(100),
    refresh_batch: wholeNumber(1, 100_000),
    refresh_concurrency: wholeNumber(1, 1_000),
    failure_backoff_max_ms: ms(0),
    max_pending: wholeNumber(1, 10_000_000),
  },
  dns: { servers: list(dnsServer), timeout_ms: ms(10), tries: wholeNumber(1, 10) },
  fetch: {
    ca_file: nullable(text),
    allow_private_addresses: bool,
    timeout_ms: ms(100),
    max_bytes: wholeNumber(1024, 16 << 20, ' of bytes'),
    user_agent: text,
  },
  cache: {
    store: oneOf(STORES),
    path: text,
    redis_url: text,
    memory_max_bytes: wholeNumber(1 << 20, 2 ** 40, ' of bytes'),
    store_max_bytes: wholeNumber(1 << 20, 2 ** 40, ' of bytes'),
    prune_interval_ms: ms(1_000),
  },
  log: { level: oneOf(LOG_LEVELS), format: oneOf(LOG_FORMATS) },
  http: { listen: list(listenSpec), max_connections: wholeNumber(1, 100_000) },
};
const ZONE: Record<string, Check> = { strict_testing: bool, tlsrpt: bool };

/** The configurable keys of each section (zones aside), in schema order: for printing a config back. */
export function configKeys(): Record<string, string[]> {
  return Object.fromEntries(Object.entries(SECTIONS).map(([section, checks]) => [section, Object.keys(checks)]));
}

export function defaultConfig(): Config {
  return {
    socketmap: { ...DEFAULTS.socketmap, listen: [...DEFAULTS.socketmap.listen] },
    exim: { ...DEFAULTS.exim, listen: [...DEFAULTS.exim.listen] },
    resolver: { ...DEFAULTS.resolver },
    dns: { ...DEFAULTS.dns, servers: [] },
    fetch: { ...DEFAULTS.fetch },
    cache: {
      store: DEFAULTS.cache.store,
      path: DEFAULTS.cache.path,
      redis_url: DEFAULTS.cache.redis_url,
      memory_max_bytes: DEFAULTS.cache.memory_max_bytes,
      store_max_bytes: DEFAULTS.cache.store_max_bytes,
      prune_interval_ms: DEFAULTS.cache.prune_interval_ms,
    },
    zones: { default: { ...DEFAULTS.zone } },
    log: { ...DEFAULTS.log },
    http: { ...DEFAULTS.http, listen: [...DEFAULTS.http.listen] },
  };
}

/** Validate parsed YAML (any shape) into a Config, filling in defaults. */
export function validateConfig(raw: unknown): Config {
  const config = defaultConfig();
  if (raw === null || raw === undefined) return config;
  const top = asObject(raw, '');
  for (const [section, value] of Object.entries(top)) {
    if (section === 'zones') {
      config.zones = validateZones(value);
      continue;
    }
    const checks = SECTIONS[section];
    if (!checks) throw new ConfigError(section, `unknown section (known: ${[...Object.keys(SECTIONS), 'zones'].join(', ')})`);
    const target = (config as unknown as Record<string, Record<string, unknown>>)[section]!;
    for (const [key, v] of Object.entries(asObject(value, section))) {
      const check = checks[key];
      if (!check) throw new ConfigError(`${section}.${key}`, `unknown key (known: ${Object.keys(checks).join(', ')})`);
      target[key] = check(v, `${section}.${key}`);
    }
  }
  return config;
}

function validateZones(value: unknown): Record<string, ZoneConfig> {
  const zones: Record<string, ZoneConfig> = { default: { ...DEFAULTS.zone } };
  const given = asObject(value, 'zones');
  // The default zone first, so named zones inherit what it sets.
  const names = Object.keys(given).sort((a, b) => (a === 'default' ? -1 : b === 'default' ? 1 : 0));
  for (const name of names) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new ConfigError(`zones.${name}`, 'zone names are 1-64 of A-Z a-z 0-9 _ . -');
    const zone: ZoneConfig = { ...zones.default! };
    for (const [key, v] of Object.entries(asObject(given[name] ?? {}, `zones.${name}`))) {
      const check = ZONE[key];
      if (!check) throw new ConfigError(`zones.${name}.${key}`, `unknown key (known: ${Object.keys(ZONE).join(', ')})`);
      (zone as unknown as Record<string, unknown>)[key] = check(v, `zones.${name}.${key}`);
    }
    zones[name] = zone;
  }
  return zones;
}

function asObject(v: unknown, path: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new ConfigError(path, `must be a mapping of keys to values, got ${show(v)}`);
  }
  return v as Record<string, unknown>;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}
