/**
 * postfix-mta-sts-resolver's mta-sts-daemon.yml read as our config: each of its options maps to ours or
 * yields a warning naming it. One row per case: their YAML, what our config must hold, which of their
 * keys are warned about.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfigSource } from '../../src/config/load.js';
import { detectFormat } from '../../src/config/migrate-resolver.js';
import { configToYaml } from '../../src/config/print.js';
import { defaultConfig, validateConfig, type Config } from '../../src/config/schema.js';

type Partial2<T> = { [K in keyof T]?: T[K] extends object ? Partial2<T[K]> : T[K] };

interface Row {
  rule: string;
  yaml: string;
  want: Partial2<Config>;
  /** The keys warned about, in order; [] = none. */
  warned: string[];
}

const ROWS: Row[] = [
  {
    rule: 'the man page example: tcp listener, internal cache, proactive fetching, one zone',
    yaml: `
host: 127.0.0.1
port: 8461
reuse_port: true
shutdown_timeout: 20
proactive_policy_fetching:
  enabled: true
  interval: 86400
  concurrency_limit: 100
  grace_ratio: 2
cache:
  type: internal
  options:
    cache_size: 10000
default_zone:
  strict_testing: false
  timeout: 4
zones:
  myzone:
    strict_testing: false
    timeout: 4
`,
    want: {
      socketmap: { listen: ['tcp:127.0.0.1:8461'], shutdown_grace_ms: 20_000 },
      resolver: { refresh_interval_ms: 86_400_000, refresh_concurrency: 100, memory_entries: 10_000 },
      cache: { store: 'memory' },
      dns: { timeout_ms: 4000 },
      fetch: { timeout_ms: 4000 },
      zones: { default: { strict_testing: false, tlsrpt: 'auto' }, myzone: { strict_testing: false, tlsrpt: 'auto' } },
    },
    warned: ['reuse_port', 'proactive_policy_fetching.grace_ratio'],
  },
  {
    rule: 'unix socket with a YAML 1.1 octal mode (PyYAML reads 0666 as 438), sqlite cache',
    yaml: `
path: "/var/run/mta-sts.sock"
mode: 0666
shutdown_timeout: 20
cache:
  type: sqlite
  options:
    filename: "/var/lib/mta-sts/cache.db"
default_zone:
  strict_testing: false
  timeout: 4
`,
    want: {
      socketmap: { listen: ['unix:/var/run/mta-sts.sock'], unix_mode: 0o666 },
      cache: { store: 'sqlite', path: '/var/lib/mta-sts/cache.db' },
    },
    warned: [],
  },
  {
    rule: 'redis: the URL maps, connection pool options have no equivalent',
    yaml: `
cache:
  type: redis
  options:
    url: "redis://127.0.0.1/0"
    max_connections: 25
    socket_timeout: 1.0
`,
    want: { cache: { store: 'redis', redis_url: 'redis://127.0.0.1/0' } },
    warned: ['cache.options.max_connections', 'cache.options.socket_timeout'],
  },
  {
    rule: 'redis_sentinel: Sentinels and master name map; an inline password is refused (it goes in a file)',
    yaml: `
cache:
  type: redis_sentinel
  options:
    sentinel_master_name: "mail-cache"
    sentinels: [["sentinel1", 26379], ["::1", 26380]]
    db: 2
    password: "inline"
    socket_timeout: 1.0
`,
    want: { cache: { store: 'redis', redis_sentinels: ['sentinel1:26379', '[::1]:26380'], redis_master_name: 'mail-cache', redis_url: 'redis://127.0.0.1/2' } },
    warned: ['cache.options.password', 'cache.options.socket_timeout'],
  },
  {
    rule: 'postgres: a postgres:// dsn maps to cache.postgres_url',
    yaml: 'cache: { type: postgres, options: { dsn: "postgres://mta@db.example:5432/mta", max_size: 4 } }',
    want: { cache: { store: 'postgres', postgres_url: 'postgres://mta@db.example:5432/mta' } },
    warned: ['cache.options.max_size'],
  },
  { rule: 'postgres: a key=value dsn does not map (warned)', yaml: 'cache: { type: postgres, options: { dsn: "host=db dbname=mta" } }', want: { cache: { store: 'postgres' } }, warned: ['cache.options.dsn'] },
  { rule: 'no cache section: internal, as in postfix-mta-sts-resolver', yaml: 'port: 9000', want: { cache: { store: 'memory' }, socketmap: { listen: ['tcp:127.0.0.1:9000'] } }, warned: [] },
  { rule: 'sqlite without a filename: our default path, with a warning', yaml: 'cache: { type: sqlite }', want: { cache: { store: 'sqlite', path: defaultConfig().cache.path } }, warned: ['cache.options.filename'] },
  { rule: 'an IPv6 host gets brackets', yaml: 'host: "::1"\nport: 8461', want: { socketmap: { listen: ['tcp:[::1]:8461'] } }, warned: [] },
  { rule: 'path wins over host and port', yaml: 'path: /run/s.sock\nhost: 0.0.0.0\nport: 1', want: { socketmap: { listen: ['unix:/run/s.sock'] } }, warned: ['host', 'port'] },
  { rule: 'mode without path does nothing there either', yaml: 'host: 127.0.0.1\nmode: 0600', want: { socketmap: { unix_mode: 0o660 } }, warned: ['mode'] },
  {
    rule: 'named zones do not inherit default_zone (they do not in postfix-mta-sts-resolver)',
    yaml: 'default_zone: { strict_testing: true, tlsrpt: true }\nzones: { postfix: {}, strict: { strict_testing: true } }',
    want: {
      zones: {
        default: { strict_testing: true, tlsrpt: true },
        postfix: { strict_testing: false, tlsrpt: 'auto' },
        strict: { strict_testing: true, tlsrpt: 'auto' },
      },
    },
    warned: [],
  },
  { rule: 'tlsrpt per zone', yaml: 'zones: { reporting: { tlsrpt: true, timeout: 4 } }', want: { zones: { reporting: { strict_testing: false, tlsrpt: true } } }, warned: ['zones.reporting.timeout'] },
  { rule: 'require_sni: false cannot be honoured', yaml: 'default_zone: { require_sni: false }', want: {}, warned: ['default_zone.require_sni'] },
  { rule: 'require_sni: true is what we do anyway', yaml: 'default_zone: { require_sni: true }', want: {}, warned: [] },
  {
    rule: 'a zone timeout other than default_zone.timeout: one timeout for all',
    yaml: 'default_zone: { timeout: 4 }\nzones: { slow: { timeout: 30 }, same: { timeout: 4 } }',
    want: { dns: { timeout_ms: 4000 }, fetch: { timeout_ms: 4000 } },
    warned: ['zones.slow.timeout'],
  },
  { rule: 'cache_grace (seconds) is the background re-check interval', yaml: 'cache_grace: 60', want: { resolver: { recheck_interval_ms: 60_000 } }, warned: [] },
  { rule: 'float seconds become whole milliseconds', yaml: 'shutdown_timeout: 2.5', want: { socketmap: { shutdown_grace_ms: 2500 } }, warned: [] },
  { rule: 'proactive fetching cannot be turned off', yaml: 'proactive_policy_fetching: { enabled: false }', want: {}, warned: ['proactive_policy_fetching.enabled'] },
  { rule: 'YAML 1.1 booleans (yes/no) as PyYAML reads them', yaml: 'default_zone: { strict_testing: yes }', want: { zones: { default: { strict_testing: true } } }, warned: [] },
  { rule: 'an unknown top-level key is reported', yaml: 'port: 8461\ntlsrpt: true', want: {}, warned: ['tlsrpt'] },
  { rule: 'a zone named default collides with our fallback zone', yaml: 'default_zone: {}\nzones: { default: { strict_testing: true } }', want: { zones: { default: { strict_testing: false } } }, warned: ['zones.default'] },
];

describe('postfix-mta-sts-resolver config, mapped', () => {
  it.each(ROWS)('$rule', ({ yaml, want, warned }) => {
    const { config, format, warnings } = parseConfigSource(yaml);
    expect(format).toBe('postfix-mta-sts-resolver');
    expect(config).toMatchObject(want);
    expect(warnings.map((w) => w.slice(0, w.indexOf(': ')))).toEqual(warned);
  });

  it('what it does not mention keeps our defaults', () => {
    const { config } = parseConfigSource('host: 127.0.0.1\nport: 8461\n');
    const defaults = defaultConfig();
    expect(config).toEqual({ ...defaults, cache: { ...defaults.cache, store: 'memory' } });
  });

  it('every warning says why', () => {
    const { warnings } = parseConfigSource(ROWS[0]!.yaml);
    expect(warnings).toEqual([
      expect.stringMatching(/^reuse_port: no equivalent: .+/),
      expect.stringMatching(/^proactive_policy_fetching\.grace_ratio: no equivalent: .+; ignored$/),
    ]);
  });

  it('the converted config, printed as ours, reads back to the same settings', () => {
    const { config } = parseConfigSource(ROWS[1]!.yaml);
    expect(validateConfig(parse(configToYaml(config)))).toEqual(config);
  });
});

describe('errors name the key in their file', () => {
  it.each<[string, string, RegExp]>([
    ['port out of range', 'port: 70000', /^port: must be a whole number from 1 to 65535, got 70000$/],
    ['port as text', 'port: "8461x"', /^port: must be a whole number/],
    ['unknown cache type', 'cache: { type: memcached }', /^cache\.type: must be one of internal, sqlite, redis, redis_sentinel, postgres/],
    ['interval below our minimum', 'proactive_policy_fetching: { interval: 10 }', /^proactive_policy_fetching\.interval: must be a number of seconds from 60 /],
    ['a host we cannot listen on', 'host: "bad host"', /^host: must be tcp:HOST:PORT/],
    ['a relative socket path', 'path: run/s.sock', /^path: must be tcp:HOST:PORT or unix:\/absolute\/path/],
    ['strict_testing not a boolean', 'default_zone: { strict_testing: "sometimes" }', /^default_zone\.strict_testing: must be true or false/],
    ['a zone name we cannot take', 'zones: { "my zone": { strict_testing: true } }', /^zones\.my zone: zone names are/],
    ['mixed formats', 'host: 127.0.0.1\nsocketmap: { listen: ["tcp:127.0.0.1:1"] }', /^mixes postfix-mta-sts-resolver options \(host\) with mta-sts-sidecar sections \(socketmap\); use one format$/],
  ])('%s', (_rule, yaml, message) => {
    expect(() => parseConfigSource(yaml)).toThrow(message);
  });
});

describe('format detection', () => {
  it.each<[string, unknown, string]>([
    ['an empty file', null, 'mta-sts-sidecar'],
    ['our sections', { socketmap: { listen: ['tcp:127.0.0.1:1'] }, zones: { x: { strict_testing: true } } }, 'mta-sts-sidecar'],
    ['our cache section', { cache: { store: 'sqlite' } }, 'mta-sts-sidecar'],
    ['their cache section alone', { cache: { type: 'sqlite' } }, 'postfix-mta-sts-resolver'],
    ['their zone options alone', { zones: { x: { timeout: 4 } } }, 'postfix-mta-sts-resolver'],
    ['default_zone alone', { default_zone: {} }, 'postfix-mta-sts-resolver'],
    ['host alone', { host: '127.0.0.1' }, 'postfix-mta-sts-resolver'],
  ])('%s', (_rule, raw, format) => {
    expect(detectFormat(raw)).toBe(format);
  });

  it('our own format is read as YAML 1.2 and gives no warnings', () => {
    const r = parseConfigSource('socketmap: { unix_mode: "0600" }\nzones: { strict: { strict_testing: true } }');
    expect(r).toMatchObject({ format: 'mta-sts-sidecar', warnings: [], config: { socketmap: { unix_mode: 0o600 } } });
  });
});
