/**
 * The config file's schema: every key declared once, with its type (and so its bounds and unit), its
 * default and a one-line description. Everything else is derived from SCHEMA: the `Config` type, the
 * validator (an unknown key or a wrong value is a ConfigError naming the key path), the defaults,
 * `config check` output (src/config/print.ts), and the README table, the mta-sts-sidecar.yml(5) page
 * and the Debian conffile (src/config/docs.ts; test/unit/config-docs.test.ts fails when they drift).
 *
 * Descriptions are plain text in which `backticks` mark literals (bold in the man page). `more` is
 * extra prose for the man page only.
 */
import { ConfigError } from '../errors.js';
import { currentRuntime, defaultCachePath, DEFAULT_CACHE_PATH_TEXT, type Runtime } from './cache-path.js';
import { RFC8461 } from '../sts/rfc8461.js';
import { REQUIRETLS_ACTIONS, SOCKETMAP } from './limits.js';
import {
  bool,
  bytes,
  dnsServer,
  fileMode,
  filePath,
  fraction,
  hostPort,
  list,
  listenSpec,
  ms,
  nullable,
  oneOf,
  postgresUrl,
  proxySetting,
  redisUrl,
  show,
  text,
  userOrGroup,
  wholeNumber,
  type Type,
} from './types.js';

/** A default that depends on where the daemon runs (the cache path); `text` says how, for the docs. */
export interface AutoDefault<T> {
  readonly auto: (runtime: Runtime) => T;
  readonly text: string;
}

export interface KeySpec<T> {
  readonly type: Type<T>;
  readonly default: T | AutoDefault<T>;
  /** One line: what the key does. */
  readonly doc: string;
  /** Further man page prose. */
  readonly more?: string;
}

export interface SectionSpec<K extends Record<string, KeySpec<any>> = Record<string, KeySpec<any>>> {
  /** One line: what the section is about (conffile comment, man page section intro). */
  readonly doc: string;
  readonly more?: string;
  readonly keys: K;
}

const key = <T>(type: Type<T>, def: NoInfer<T> | AutoDefault<NoInfer<T>>, doc: string, more?: string): KeySpec<T> => ({
  type,
  default: def,
  doc,
  ...(more === undefined ? {} : { more }),
});
const section = <K extends Record<string, KeySpec<any>>>(doc: string, keys: K, more?: string): SectionSpec<K> => ({
  doc,
  keys,
  ...(more === undefined ? {} : { more }),
});

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** Zone names: the socketmap map name Postfix sends. */
export const ZONE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const DEFAULT_ZONE = 'default';

const unixOwner = nullable(userOrGroup, "the daemon's user");
const unixGroup = nullable(userOrGroup, "the daemon's group");
/** A socketmap map name as Postfix sends it (the word before the key), like a zone name. */
const mapName: Type<string> = {
  accepts: '1 to 64 of A-Z a-z 0-9 _ . -',
  check: (v, path) => {
    if (typeof v !== 'string' || !ZONE_NAME.test(v)) throw new ConfigError(path, `must be 1-64 of A-Z a-z 0-9 _ . -, got ${show(v)}`);
    return v;
  },
};
/** `true`, `false` or `auto` (decided where the daemon runs: src/answer/tlsrpt-auto.ts). */
const boolOrAuto: Type<boolean | 'auto'> = {
  accepts: 'true, false or auto',
  check: (v, path) => {
    if (typeof v !== 'boolean' && v !== 'auto') throw new ConfigError(path, `must be true, false or auto, got ${show(v)}`);
    return v;
  },
};
/** Connections at once, per listener group. */
const connections = wholeNumber(1, 1_000_000);
/** A request name + key is a domain of at most 253 octets (RFC 1035 §2.3.4) plus a map name. */
const requestBytes = bytes(64, 1 << 20);
/** Cache sizes: from 1 MiB to 1 TiB. */
const cacheBytes = bytes(1 << 20, 2 ** 40);

export const SCHEMA = {
  socketmap: section('Where Postfix connects (`smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix`).', {
    listen: key(list(listenSpec, 1), ['tcp:127.0.0.1:8461'], 'listeners; IPv6 hosts in brackets', 'The packaged service may create unix sockets only in `/run/mta-sts-sidecar/`.'),
    unix_mode: key(fileMode, 0o660, 'file mode of unix sockets: owner and group may connect'),
    unix_owner: key(unixOwner, null, 'owner of unix socket files'),
    unix_group: key(
      unixGroup,
      null,
      'group of unix socket files',
      'The packaged service runs without capabilities, without the chown system calls and in its own user namespace ' +
        "(PrivateUsers=yes), so its sockets keep its own user and group: to let Postfix in, leave these at `null` and add Postfix's " +
        "user to the daemon's group (`adduser postfix mta-sts-sidecar`), which also opens `/run/mta-sts-sidecar/` (mode 0750) to it.",
    ),
    max_request_bytes: key(requestBytes, 1024, 'longest request; a longer one closes that connection'),
    max_connections: key(connections, 2000, 'connections beyond this are closed when accepted', 'Postfix keeps one per smtp(8) process.'),
    idle_timeout_ms: key(ms(100), 300_000, 'an idle connection is closed after this', 'Postfix closes its own after about 100 seconds (`ipc_idle`).'),
    request_timeout_ms: key(ms(100), 30_000, 'a request that has started must be complete within this'),
    shutdown_grace_ms: key(ms(0, 600_000), 5_000, "on stop or a listener's removal, replies still owed get this long"),
    max_reply_bytes: key(
      bytes(1024, 1 << 30),
      SOCKETMAP.MAX_REPLY_BYTES,
      "longest reply; must match Postfix's `socketmap_max_reply`",
      'A reply that would be longer drops its TLSRPT attributes first, keeping the enforce directive. Raise both together.',
    ),
    mx_filter_name: key(
      mapName,
      'mx-filter',
      'reserved map name for `smtp_dns_reply_filter` lookups (not a zone)',
      '`smtp_dns_reply_filter = socketmap:inet:127.0.0.1:8461:mx-filter` makes Postfix 3.0 and later drop the MX hosts an enforced ' +
        "policy does not list (RFC 8461 §4.1); it follows the `default` zone's `strict_testing`.",
    ),
    requiretls_name: key(
      mapName,
      'requiretls',
      'reserved map name for Postfix 3.11 `smtp_requiretls_policy` (not a zone)',
      '`enforce` for a domain whose policy is enforced, `socketmap.requiretls_otherwise` for every other.',
    ),
    requiretls_otherwise: key(
      oneOf(REQUIRETLS_ACTIONS),
      'opportunistic+starttls',
      'the REQUIRETLS action for domains without an enforced policy',
    ),
  }),
  exim: section(
    "Exim's `${readsocket}` lookups (contrib/exim); no listener unless one is given.",
    {
      listen: key(list(listenSpec), [], "listeners, e.g. `tcp:127.0.0.1:8463`, contrib/exim's `MTA_STS_SOCKET`"),
      unix_mode: key(fileMode, 0o660, 'file mode of its unix sockets'),
      unix_owner: key(unixOwner, null, 'owner of its unix socket files'),
      unix_group: key(
        unixGroup,
        null,
        'group of its unix socket files',
        "Under the packaged service, add Exim's user to the daemon's group (`adduser Debian-exim mta-sts-sidecar`) instead.",
      ),
      max_request_bytes: key(requestBytes, 1024, 'longest request line'),
      max_connections: key(connections, 1000, 'connections beyond this are closed when accepted'),
      request_timeout_ms: key(ms(100), 10_000, 'the request line must arrive within this'),
      shutdown_grace_ms: key(ms(0, 600_000), 5_000, "on stop or a listener's removal, replies still owed get this long"),
    },
    "A router and a transport for Debian's exim4 are in `/usr/share/doc/mta-sts-sidecar/examples/exim/`.",
  ),
  resolver: section('The policy lifecycle: discovery, fetch, cache and refresh.', {
    answer_deadline_ms: key(
      ms(10),
      10_000,
      'answer (from the cache or `NOTFOUND`) within this',
      "A resolution still running finishes in the background and is cached. Keep it well inside Postfix's 100 second socketmap timeout.",
    ),
    negative_ttl_ms: key(ms(0), 5 * 60_000, 'how long "this domain has no policy" is remembered'),
    failure_retry_ms: key(
      ms(0),
      5 * 60_000,
      'a failed fetch is not retried sooner',
      'It doubles per consecutive failure of a domain, up to `resolver.failure_backoff_max_ms`.',
    ),
    recheck_interval_ms: key(
      ms(0),
      10 * 60_000,
      "background check of a cached policy's TXT id at most this often",
      'RFC 8461 §5.1: answers come from the cache at once; the check never delays one.',
    ),
    dns_failure_ttl_ms: key(ms(0), 60_000, 'a DNS failure with nothing cached is remembered this long'),
    memory_entries: key(wholeNumber(1, 100_000_000), 100_000, 'entries of the in-memory tier (policies and negative entries)'),
    max_concurrent_fetches: key(wholeNumber(1, 10_000), 64, 'policy fetches at once, over all domains'),
    min_fetch_interval_ms: key(
      ms(0),
      60_000,
      'at most one policy fetch per domain this often',
      "Whatever the policy's `max_age` (0 included) or changes of its TXT id say: a policy host cannot make us fetch more often.",
    ),
    refresh_interval_ms: key(ms(60_000), 24 * 3600_000, "re-check every cached policy's TXT id at least this often", 'Even when no mail goes to the domain.'),
    refetch_at_fraction: key(
      fraction,
      0.5,
      'refetch a policy once this fraction of its `max_age` has passed',
      'RFC 8461 §10.2: the policy of a live domain never lapses.',
    ),
    refresh_tick_ms: key(ms(100), 60_000, 'how often the refresher looks for entries that are due'),
    refresh_batch: key(wholeNumber(1, 100_000), 200, 'refreshes started per look'),
    refresh_concurrency: key(wholeNumber(1, 1_000), 8, 'refreshes at once; they count against `resolver.max_concurrent_fetches`'),
    failure_backoff_max_ms: key(ms(0), 6 * 3600_000, 'cap of the per-domain failure backoff'),
    max_pending: key(
      wholeNumber(1, 10_000_000),
      10_000,
      'resolutions pending at once; beyond it, answer from cache or `NOTFOUND`',
      'Bounds the work tarpitting policy hosts can pile up past the answer deadline.',
    ),
  }),
  dns: section('DNS for the TXT, MX and policy host lookups.', {
    servers: key(list(dnsServer), [], 'name servers; empty: those of `/etc/resolv.conf`', 'Use a validating resolver.'),
    timeout_ms: key(ms(10), 5_000, 'timeout of one DNS query'),
    tries: key(wholeNumber(1, 10), 2, 'tries per query'),
  }),
  fetch: section('The HTTPS policy fetch from https://mta-sts.DOMAIN/.well-known/mta-sts.txt.', {
    ca_file: key(nullable(filePath, 'the system roots only'), null, 'extra trusted roots (PEM), added to the system roots'),
    allow_private_addresses: key(
      bool,
      false,
      '`true` lets policy hosts resolve to loopback and private ranges',
      'By default a policy host must resolve to globally reachable unicast addresses; `true` is for test labs and internal domains.',
    ),
    timeout_ms: key(ms(100), 10_000, 'deadline for connecting, the headers and the body together'),
    max_bytes: key(bytes(1024, 16 << 20), RFC8461.POLICY_MAX_BYTES, 'largest policy accepted (RFC 8461 §3.3: 64 KiB)'),
    user_agent: key(text, 'mta-sts-sidecar', 'the User-Agent header of policy fetches'),
    proxy: key(
      proxySetting,
      null,
      'fetch policies through this HTTP CONNECT proxy (`env`: HTTPS_PROXY, NO_PROXY)',
      "`env` takes the proxy from HTTPS_PROXY (none set: direct) and sends the hosts NO_PROXY names (and names under them) direct. Certificate validation, SNI, refused redirects, `fetch.timeout_ms` and `fetch.max_bytes` are unchanged: the TLS session to the policy host runs inside the tunnel. The proxy resolves the policy host itself, out of sight of the address filter: a host that our own DNS resolves to any non-public address is not sent through it (reason `address`) unless `fetch.allow_private_addresses` is true. Its password is masked in output.",
    ),
  }),
  cache: section(
    'The policy cache.',
    {
      store: key(
        oneOf(['sqlite', 'memory', 'redis', 'postgres']),
        'sqlite',
        '`sqlite`: a local file; `memory`: nothing kept; `redis`, `postgres`: shared',
      ),
      path: key(
        filePath,
        { auto: (runtime) => defaultCachePath(runtime).path, text: DEFAULT_CACHE_PATH_TEXT },
        'the SQLite file; `config check` shows the one chosen',
        'Its directory is created at start; one that cannot be written stops the daemon with a message naming `cache.path`.',
      ),
      redis_url: key(redisUrl, 'redis://127.0.0.1:6379/0', 'the Redis server, for `store: redis`; its password is masked in output'),
      redis_password_file: key(
        nullable(filePath, 'the password of `redis_url`, if any'),
        null,
        'a file holding the Redis password (first line), instead of one in `redis_url`',
        'Read at start and reload. Cluster nodes get the same password; Sentinels get `redis_sentinel_password_file`. Keep the file readable by the daemon only.',
      ),
      redis_tls_ca_file: key(
        nullable(filePath, "the system's CA certificates"),
        null,
        'CA certificates (PEM) that sign the Redis servers\' certificates, for `rediss://`',
        'Also used for the Sentinels and Cluster nodes. The certificate must name the host (or IP address) the store connects to.',
      ),
      redis_sentinels: key(
        list(hostPort),
        [],
        'Redis Sentinels (HOST:PORT) that name the primary; non-empty: Sentinel mode',
        '`redis_url` then gives only the user, database and TLS (`rediss://`). The store follows a failover by itself: the Sentinels name the new primary and the connection moves to it.',
      ),
      redis_sentinel_password_file: key(
        nullable(filePath, 'the Sentinels take no password'),
        null,
        'a file holding the Sentinels\' password (first line), if they require one',
      ),
      redis_master_name: key(text, 'mymaster', 'the primary set the Sentinels watch (`sentinel monitor NAME ...`)'),
      redis_cluster_nodes: key(
        list(hostPort),
        [],
        'Redis Cluster nodes (HOST:PORT) to start from; non-empty: cluster mode',
        '`redis_url` then gives only the user and TLS (`rediss://`). Each key lives on one node; while a node and its replicas are down, lookups of its keys miss and are resolved directly.',
      ),
      postgres_url: key(
        postgresUrl,
        'postgres://127.0.0.1:5432/mta-sts-sidecar',
        'the PostgreSQL database, for `store: postgres`; its password is masked in output',
        'The user defaults to the one the daemon runs as. Tables go in the schema `mta_sts_sidecar`, created and migrated at start. `?sslmode=require` (or verify-full) asks for TLS.',
      ),
      postgres_password_file: key(
        nullable(filePath, 'the password of `postgres_url`, if any'),
        null,
        'a file holding the PostgreSQL password (first line), instead of one in the URL',
        'Read at start and reload. Keep the file readable by the daemon only.',
      ),
      postgres_pool_max: key(wholeNumber(1, 100), 4, 'most PostgreSQL connections a daemon holds at once'),
      memory_max_bytes: key(cacheBytes, 64 * 1024 * 1024, 'bound of the in-memory tier, besides `resolver.memory_entries`'),
      store_max_bytes: key(cacheBytes, 256 * 1024 * 1024, 'bound of the memory and sqlite stores'),
      prune_interval_ms: key(ms(1_000), 3600_000, 'expired policies are removed from the store this often', 'RFC 8461 §5.1: a policy past its max_age is never used.'),
    },
    'The packaged service may write only below `/var/lib/mta-sts-sidecar/` and `/run/mta-sts-sidecar/`.',
  ),
  log: section('Logging, to standard output (the journal under systemd).', {
    level: key(oneOf(LOG_LEVELS), 'info', 'least severe level logged'),
    format: key(oneOf(['json', 'pretty']), 'json', '`json`: one object per line; `pretty`: one readable line, for a terminal', 'Takes effect at the next start only.'),
  }),
  http: section('Prometheus `/metrics`, `/healthz` and `/readyz`.', {
    listen: key(list(listenSpec), ['tcp:127.0.0.1:8462'], 'listeners; `[]` turns the endpoint off'),
    max_connections: key(wholeNumber(1, 100_000), 64, 'connections to the HTTP endpoint at once'),
    unix_mode: key(fileMode, 0o660, 'file mode of its unix sockets'),
    shutdown_grace_ms: key(ms(0, 600_000), 5_000, "on stop or a listener's removal, requests in progress get this long"),
  }),
} as const;

/** The settings of one zone; `zones.default` holds the defaults of the others. */
export const ZONE_SCHEMA = section(
  'The socketmap name (`postfix` in `socketmap:inet:127.0.0.1:8461:postfix`) selects a zone; unknown names use `default`, and named zones inherit what `default` sets.',
  {
    strict_testing: key(bool, false, '`true`: enforce `mode: testing` policies too', 'RFC 8461 §5 leaves testing policies unenforced; this is an opt-in.'),
    tlsrpt: key(
      boolOrAuto,
      'auto',
      'Postfix 3.10 TLSRPT attributes; `auto`: when the local Postfix is 3.10 or newer',
      '`policy_type=sts policy_domain=... mx_host_pattern=...`, with which Postfix 3.10.5 and later also apply RFC 8461\'s exact ' +
        'one-label wildcard rule; Postfix before 3.10 refuses them. `auto` asks `postconf -d mail_version` at start and reload ' +
        '(no local Postfix: off); the start-up log, `config check` and `query` say which and why.',
    ),
    dane: key(
      oneOf(['auto', 'off']),
      'auto',
      '`auto`: DANE first (RFC 8461 §2) when the resolver validates DNSSEC; `off`: MTA-STS answers only',
      'With `auto`, a domain whose MX hosts have DNSSEC-signed TLSA records (RFC 7672) is answered `dane-only` or `dane`, so ' +
        "Postfix's own DANE decides and MTA-STS never overrides it; a failed DANE lookup is `TEMP` where the MTA-STS answer " +
        'would enforce. Whether the resolver validates (the root SOA answered with AD) is asked at start and logged; ' +
        'Postfix needs `smtp_dns_support_level = dnssec` for `dane` answers.',
    ),
  },
  'Zone names are 1 to 64 of A-Z a-z 0-9 _ . -.',
);

// ---------- derived: types ----------

type ValueOf<K> = K extends KeySpec<infer T> ? T : never;
type SectionValue<S extends SectionSpec> = { -readonly [K in keyof S['keys']]: ValueOf<S['keys'][K]> };
export type SectionName = keyof typeof SCHEMA;

export type ZoneConfig = SectionValue<typeof ZONE_SCHEMA>;
export type Config = { -readonly [S in SectionName]: SectionValue<(typeof SCHEMA)[S]> } & {
  /** Zone name (the socketmap map name) → settings; `default` applies to unknown names. */
  zones: Record<string, ZoneConfig>;
};

// ---------- derived: defaults, validation ----------

const sections = SCHEMA as unknown as Record<string, SectionSpec>;

export function isAutoDefault<T>(d: T | AutoDefault<T>): d is AutoDefault<T> {
  return typeof d === 'object' && d !== null && 'auto' in d && typeof (d as AutoDefault<T>).auto === 'function';
}

/** A key's default, where the daemon runs; lists are fresh copies. */
export function defaultOf<T>(spec: KeySpec<T>, runtime: Runtime): T {
  const d = spec.default;
  if (isAutoDefault(d)) return d.auto(runtime);
  return (Array.isArray(d) ? [...d] : d) as T;
}

function sectionDefaults(spec: SectionSpec, runtime: Runtime): Record<string, unknown> {
  return Object.fromEntries(Object.entries(spec.keys).map(([k, s]) => [k, defaultOf(s, runtime)]));
}

/** The configurable keys of each section (zones aside), in schema order: for printing a config back. */
export function configKeys(): Record<string, string[]> {
  return Object.fromEntries(Object.entries(sections).map(([name, s]) => [name, Object.keys(s.keys)]));
}

export function defaultConfig(runtime: Runtime = currentRuntime()): Config {
  const config: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(sections)) config[name] = sectionDefaults(spec, runtime);
  config.zones = { [DEFAULT_ZONE]: sectionDefaults(ZONE_SCHEMA, runtime) };
  return config as Config;
}

/** Validate parsed YAML (any shape) into a Config, filling in defaults (where `runtime` runs). */
export function validateConfig(raw: unknown, runtime: Runtime = currentRuntime()): Config {
  const config = defaultConfig(runtime);
  if (raw === null || raw === undefined) return config;
  const target = config as unknown as Record<string, Record<string, unknown>>;
  for (const [name, value] of Object.entries(asObject(raw, ''))) {
    if (name === 'zones') {
      config.zones = validateZones(value, runtime);
      continue;
    }
    const spec = sections[name];
    if (!spec) throw new ConfigError(name, `unknown section (known: ${[...Object.keys(sections), 'zones'].join(', ')})`);
    // `socketmap:` with nothing under it is YAML null: an empty section.
    if (value === null) continue;
    checkKeys(spec, asObject(value, name), name, target[name]!);
  }
  // A reserved map name answers filter lookups, never as a zone.
  for (const reserved of ['mx_filter_name', 'requiretls_name'] as const) {
    const name = config.socketmap[reserved];
    if (Object.hasOwn(config.zones, name)) throw new ConfigError(`zones.${name}`, `"${name}" is socketmap.${reserved}, a reserved map name, not a zone`);
  }
  return config;
}

function checkKeys(spec: SectionSpec, given: Record<string, unknown>, path: string, into: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(given)) {
    const keySpec = spec.keys[k];
    if (!keySpec) throw new ConfigError(`${path}.${k}`, `unknown key (known: ${Object.keys(spec.keys).join(', ')})`);
    into[k] = keySpec.type.check(v, `${path}.${k}`);
  }
}

function validateZones(value: unknown, runtime: Runtime): Record<string, ZoneConfig> {
  const defaults = sectionDefaults(ZONE_SCHEMA, runtime) as ZoneConfig;
  const zones: Record<string, ZoneConfig> = { [DEFAULT_ZONE]: defaults };
  if (value === null) return zones;
  const given = asObject(value, 'zones');
  // The default zone first, so named zones inherit what it sets.
  const names = Object.keys(given).sort((a, b) => (a === DEFAULT_ZONE ? -1 : b === DEFAULT_ZONE ? 1 : 0));
  for (const name of names) {
    if (!ZONE_NAME.test(name)) throw new ConfigError(`zones.${name}`, 'zone names are 1-64 of A-Z a-z 0-9 _ . -');
    const zone = { ...zones[DEFAULT_ZONE]! };
    checkKeys(ZONE_SCHEMA, asObject(given[name] ?? {}, `zones.${name}`), `zones.${name}`, zone as unknown as Record<string, unknown>);
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

// ---------- derived: output ----------

/** Every key of a Config with its secrets masked (`cache.redis_url`'s password): for output and logs. */
export function redactConfig(config: Config): Config {
  const out = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const [name, spec] of Object.entries(sections)) {
    for (const [k, keySpec] of Object.entries(spec.keys)) {
      const redact = keySpec.type.redact;
      if (redact && out[name]?.[k] !== undefined) out[name][k] = redact(out[name][k]);
    }
  }
  return out as unknown as Config;
}
