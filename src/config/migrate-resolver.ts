/**
 * Reads postfix-mta-sts-resolver's mta-sts-daemon.yml, so its users switch by pointing `serve --config`
 * at the file they have. Pure: parsed YAML in, a raw config of ours plus warnings out; the result then
 * goes through the same validation as any config of ours. Every option of theirs either maps to one of
 * ours or yields a warning saying why not: nothing is dropped silently. docs/migration.md has the table.
 */
import net from 'node:net';
import { ConfigError } from '../errors.js';
import { defaultConfig } from './schema.js';

export const RESOLVER_FORMAT = 'postfix-mta-sts-resolver';
export type ConfigFormat = 'mta-sts-sidecar' | typeof RESOLVER_FORMAT;

/** Top-level keys only postfix-mta-sts-resolver has (mta-sts-daemon.yml(5)). */
const RESOLVER_KEYS = [
  'host',
  'port',
  'path',
  'mode',
  'reuse_port',
  'cache_grace',
  'shutdown_timeout',
  'proactive_policy_fetching',
  'default_zone',
];
/** Keys both formats have at the top level, with different content. */
const SHARED_KEYS = ['cache', 'zones'];
/** postfix-mta-sts-resolver defaults (its defaults.py), used when its file leaves them out. */
const THEIR_DEFAULTS = { host: '127.0.0.1', port: 8461, cacheType: 'internal' } as const;
const CACHE_TYPES = ['internal', 'sqlite', 'redis', 'redis_sentinel', 'postgres'];

export interface Migration {
  /** The same settings in our format (unvalidated: pass to validateConfig). */
  raw: Record<string, unknown>;
  /** One line per option that has no equivalent or is changed on the way, `key: why`. */
  warnings: string[];
  /** Our key path -> their key, so a validation error can name the key the user wrote. */
  origin: Map<string, string>;
}

/** Which format parsed YAML is in; a file mixing both is an error. */
export function detectFormat(raw: unknown): ConfigFormat {
  if (!isObject(raw)) return 'mta-sts-sidecar';
  const keys = Object.keys(raw);
  const theirs = keys.filter((k) => RESOLVER_KEYS.includes(k));
  const cache = raw.cache;
  if (isObject(cache) && ('type' in cache || 'options' in cache)) theirs.push('cache.type');
  const zones = raw.zones;
  if (isObject(zones)) {
    for (const [name, zone] of Object.entries(zones)) {
      if (isObject(zone) && ('timeout' in zone || 'require_sni' in zone)) theirs.push(`zones.${name}`);
    }
  }
  if (theirs.length === 0) return 'mta-sts-sidecar';
  const ourSections = Object.keys(defaultConfig()).filter((k) => !SHARED_KEYS.includes(k));
  const ours = keys.filter((k) => ourSections.includes(k));
  if (ours.length > 0) {
    throw new ConfigError(
      '',
      `mixes postfix-mta-sts-resolver options (${theirs.join(', ')}) with mta-sts-sidecar sections (${ours.join(', ')}); use one format`,
    );
  }
  return RESOLVER_FORMAT;
}

/** Maps a parsed mta-sts-daemon.yml to our config format. Throws ConfigError naming their key. */
export function migrateResolverConfig(input: Record<string, unknown>): Migration {
  const raw: Record<string, Record<string, unknown>> = {};
  const warnings: string[] = [];
  const origin = new Map<string, string>();
  const set = (ourPath: string, value: unknown, theirKey: string): void => {
    const [section, key] = ourPath.split('.') as [string, string];
    (raw[section] ??= {})[key] = value;
    origin.set(ourPath, theirKey);
  };
  const warn = (key: string, why: string): void => void warnings.push(`${key}: ${why}`);
  const has = (key: string): boolean => input[key] !== undefined && input[key] !== null;

  // Listener: `path` (unix socket) wins over host/port, as in postfix-mta-sts-resolver.
  if (has('path')) {
    const file = text(input.path, 'path');
    set('socketmap.listen', [`unix:${file}`], 'path');
    for (const k of ['host', 'port']) if (has(k)) warn(k, 'ignored because path is set (as postfix-mta-sts-resolver does)');
    if (has('mode')) set('socketmap.unix_mode', whole(input.mode, 'mode', 0, 0o777), 'mode');
  } else {
    const host = has('host') ? text(input.host, 'host') : THEIR_DEFAULTS.host;
    const port = has('port') ? whole(input.port, 'port', 1, 65_535) : THEIR_DEFAULTS.port;
    set('socketmap.listen', [`tcp:${net.isIPv6(host) ? `[${host}]` : host}:${port}`], 'host');
    if (has('mode')) warn('mode', 'only applies to a unix socket (path); ignored');
  }
  if (has('reuse_port')) {
    warn('reuse_port', 'no equivalent: one daemon per address; several daemons can share a cache with cache type redis');
  }
  if (has('cache_grace')) {
    set('resolver.recheck_interval_ms', millis(input.cache_grace, 'cache_grace', 0, 86_400), 'cache_grace');
  }
  if (has('shutdown_timeout')) {
    set('socketmap.shutdown_grace_ms', millis(input.shutdown_timeout, 'shutdown_timeout', 0, 600), 'shutdown_timeout');
  }
  if (has('proactive_policy_fetching')) migrateProactive(mapping(input.proactive_policy_fetching, 'proactive_policy_fetching'), set, warn);
  migrateCache(has('cache') ? mapping(input.cache, 'cache') : {}, set, warn);

  // Zones. Their named zones do not inherit from default_zone (each missing key takes the built-in
  // default), while ours inherit from `default`: so every named zone gets both keys written out.
  const defaultZone = has('default_zone') ? mapping(input.default_zone, 'default_zone') : {};
  const zones: Record<string, Record<string, boolean | 'auto'>> = { default: migrateZone(defaultZone, 'default_zone', warn) };
  let defaultTimeout: number | undefined;
  if (defaultZone.timeout !== undefined && defaultZone.timeout !== null) {
    defaultTimeout = millis(defaultZone.timeout, 'default_zone.timeout', 0.1, 86_400);
    set('dns.timeout_ms', defaultTimeout, 'default_zone.timeout');
    set('fetch.timeout_ms', defaultTimeout, 'default_zone.timeout');
  }
  const named = has('zones') ? mapping(input.zones, 'zones') : {};
  for (const [name, value] of Object.entries(named)) {
    const key = `zones.${name}`;
    const zone = value === null || value === undefined ? {} : mapping(value, key);
    if (name === 'default') {
      warn(key, 'the zone named "default" is the fallback zone in mta-sts-sidecar, so default_zone settings apply to it; ignored');
      continue;
    }
    zones[name] = migrateZone(zone, key, warn);
    if (zone.timeout !== undefined && zone.timeout !== null) {
      // The usual file repeats default_zone's timeout in every zone: only a different value is news.
      const ms = millis(zone.timeout, `${key}.timeout`, 0.1, 86_400);
      if (ms !== defaultTimeout) {
        warn(
          `${key}.timeout`,
          `no per-zone timeouts in mta-sts-sidecar; ${defaultTimeout === undefined ? 'set default_zone.timeout to apply one to every zone' : 'default_zone.timeout applies to every zone'}; ignored`,
        );
      }
    }
  }
  (raw as Record<string, unknown>).zones = zones;
  for (const [name] of Object.entries(zones)) origin.set(`zones.${name}`, name === 'default' ? 'default_zone' : `zones.${name}`);

  for (const key of Object.keys(input)) {
    if (!RESOLVER_KEYS.includes(key) && !SHARED_KEYS.includes(key)) {
      warn(key, 'not a postfix-mta-sts-resolver option (it ignores it too); ignored');
    }
  }
  return { raw, warnings, origin };
}

type Setter = (ourPath: string, value: unknown, theirKey: string) => void;
type Warner = (key: string, why: string) => void;

function migrateProactive(p: Record<string, unknown>, set: Setter, warn: Warner): void {
  const base = 'proactive_policy_fetching';
  for (const [key, value] of Object.entries(p)) {
    if (value === null || value === undefined) continue;
    const at = `${base}.${key}`;
    switch (key) {
      case 'enabled':
        if (!bool(value, at)) {
          warn(at, 'mta-sts-sidecar always refreshes cached policies in the background (RFC 8461 §10.2); it cannot be turned off');
        }
        break;
      case 'interval':
        set('resolver.refresh_interval_ms', millis(value, at, 60, 86_400), at);
        break;
      case 'concurrency_limit':
        set('resolver.refresh_concurrency', whole(value, at, 1, 1_000), at);
        break;
      case 'grace_ratio':
        warn(at, 'no equivalent: a policy is refetched once half its max_age has passed and re-checked every interval; ignored');
        break;
      default:
        warn(at, 'unknown option; ignored');
    }
  }
}

function migrateCache(cache: Record<string, unknown>, set: Setter, warn: Warner): void {
  const type = cache.type === undefined || cache.type === null ? THEIR_DEFAULTS.cacheType : text(cache.type, 'cache.type');
  if (!CACHE_TYPES.includes(type)) {
    throw new ConfigError('cache.type', `must be one of ${CACHE_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  }
  const options = cache.options === undefined || cache.options === null ? {} : mapping(cache.options, 'cache.options');
  for (const key of Object.keys(cache)) if (key !== 'type' && key !== 'options') warn(`cache.${key}`, 'unknown option; ignored');
  const ignore = (key: string, why = 'no equivalent; ignored'): void => warn(`cache.options.${key}`, why);

  switch (type) {
    case 'internal':
      set('cache.store', 'memory', 'cache.type');
      for (const [key, value] of Object.entries(options)) {
        if (key === 'cache_size') set('resolver.memory_entries', whole(value, 'cache.options.cache_size', 1, 100_000_000), 'cache.options.cache_size');
        else ignore(key);
      }
      return;
    case 'sqlite':
      set('cache.store', 'sqlite', 'cache.type');
      if (options.filename === undefined || options.filename === null) {
        warn('cache.options.filename', 'missing; using the mta-sts-sidecar default path');
      }
      for (const [key, value] of Object.entries(options)) {
        if (key === 'filename') set('cache.path', text(value, 'cache.options.filename'), 'cache.options.filename');
        else if (key === 'threads') ignore(key, 'no equivalent: one connection, writes batched in a transaction; ignored');
        else if (key === 'timeout') ignore(key, 'no equivalent: a locked database delays only the write, which is retried; ignored');
        else ignore(key);
      }
      return;
    case 'redis':
      set('cache.store', 'redis', 'cache.type');
      if (options.url === undefined || options.url === null) {
        warn('cache.options.url', `missing; using the mta-sts-sidecar default ${defaultConfig().cache.redis_url}`);
      }
      for (const [key, value] of Object.entries(options)) {
        if (key === 'url') set('cache.redis_url', text(value, 'cache.options.url'), 'cache.options.url');
        else ignore(key, 'no equivalent (connection settings come from the URL; timeouts are built in); ignored');
      }
      return;
    case 'redis_sentinel':
      set('cache.store', 'redis', 'cache.type');
      for (const [key, value] of Object.entries(options)) {
        if (key === 'sentinels') set('cache.redis_sentinels', sentinelList(value, 'cache.options.sentinels'), 'cache.options.sentinels');
        else if (key === 'sentinel_master_name') set('cache.redis_master_name', text(value, 'cache.options.sentinel_master_name'), 'cache.options.sentinel_master_name');
        else if (key === 'db') set('cache.redis_url', `redis://127.0.0.1/${whole(value, 'cache.options.db', 0, 1_000_000)}`, 'cache.options.db');
        else if (key === 'password') ignore(key, 'not taken inline: put it in a file readable by the daemon only and set cache.redis_password_file');
        else ignore(key, 'no equivalent (timeouts are built in); ignored');
      }
      return;
    case 'postgres':
      set('cache.store', 'postgres', 'cache.type');
      for (const [key, value] of Object.entries(options)) {
        const dsn = key === 'dsn' ? text(value, 'cache.options.dsn') : '';
        if (key === 'dsn' && /^postgres(ql)?:\/\//.test(dsn)) set('cache.postgres_url', dsn, 'cache.options.dsn');
        else if (key === 'dsn') ignore(key, 'only a postgres:// URL maps to cache.postgres_url (not a key=value DSN); using the default');
        else ignore(key, 'no equivalent (the pool is bounded by cache.postgres_pool_max); ignored');
      }
      return;
  }
}

/** Their `sentinels: [[host, port], ...]` as our `HOST:PORT` strings. */
function sentinelList(value: unknown, at: string): string[] {
  if (!Array.isArray(value)) throw new ConfigError(at, 'must be a list of [host, port] pairs');
  return value.map((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new ConfigError(`${at}[${i}]`, 'must be a [host, port] pair');
    const host = text(pair[0], `${at}[${i}][0]`);
    const port = whole(pair[1], `${at}[${i}][1]`, 1, 65_535);
    return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  });
}

function migrateZone(zone: Record<string, unknown>, at: string, warn: Warner): Record<string, boolean | 'auto'> {
  // tlsrpt unset keeps our default, auto: on only where the local Postfix reads the attributes.
  const out: { strict_testing: boolean; tlsrpt: boolean | 'auto' } = { strict_testing: false, tlsrpt: 'auto' };
  for (const [key, value] of Object.entries(zone)) {
    if (value === null || value === undefined) continue;
    switch (key) {
      case 'strict_testing':
      case 'tlsrpt':
        out[key] = bool(value, `${at}.${key}`);
        break;
      case 'require_sni':
        if (!bool(value, `${at}.${key}`)) {
          warn(`${at}.require_sni`, 'mta-sts-sidecar always sends servername=hostname (RFC 8461 §4.2 requires SNI); ignored');
        }
        break;
      case 'timeout':
        break; // handled by the caller: one timeout for all zones
      default:
        warn(`${at}.${key}`, 'unknown option; ignored');
    }
  }
  return out;
}

/**
 * Rewrites a validation error about one of our keys into one about the key of theirs it came from,
 * so the message names what is in the user's file.
 */
export function explainInTheirTerms(err: ConfigError, origin: Map<string, string>): ConfigError {
  const ourKey = [...origin.keys()]
    .filter((k) => err.path === k || err.path.startsWith(`${k}.`) || err.path.startsWith(`${k}[`))
    .sort((a, b) => b.length - a.length)[0];
  if (ourKey === undefined) return err;
  const detail = err.message.startsWith(`${err.path}: `) ? err.message.slice(err.path.length + 2) : err.message;
  return new ConfigError(origin.get(ourKey)!, detail);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function mapping(v: unknown, key: string): Record<string, unknown> {
  if (!isObject(v)) throw new ConfigError(key, `must be a mapping of keys to values, got ${JSON.stringify(v)}`);
  return v;
}

function text(v: unknown, key: string): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(key, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(key, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function whole(v: unknown, key: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(key, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Their durations are seconds (int or float); ours are whole milliseconds. */
function millis(v: unknown, key: string, minSeconds: number, maxSeconds: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < minSeconds || v > maxSeconds) {
    throw new ConfigError(key, `must be a number of seconds from ${minSeconds} to ${maxSeconds}, got ${JSON.stringify(v)}`);
  }
  return Math.round(v * 1000);
}
