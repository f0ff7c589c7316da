/** The YAML config: defaults, the documented keys, and one-line errors that name the key. */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { configToYaml } from '../../src/config/print.js';
import { maskUrl } from '../../src/config/redact.js';
import { defaultConfig, defaultOf, redactConfig, SCHEMA, type Config, type SectionSpec } from '../../src/config/schema.js';

describe('config', () => {
  it('an empty file gives the embedded defaults', () => {
    const c = parseConfig('');
    expect(c.socketmap.listen).toEqual(['tcp:127.0.0.1:8461']);
    expect(c.cache.store).toBe('sqlite');
    expect(c.fetch.allow_private_addresses).toBe(false);
    expect(c.dns.servers).toEqual([]);
    expect(c.resolver.answer_deadline_ms).toBe(DEFAULTS.resolver.answer_deadline_ms);
    expect(c.zones.default).toEqual({ strict_testing: false, tlsrpt: 'auto', dane: 'auto' });
  });

  it('reads the keys DESIGN.md promises', () => {
    const c = parseConfig(`
socketmap:
  listen: [tcp:127.0.0.1:9000, unix:/run/mta-sts-sidecar/socketmap.sock]
  unix_mode: "0600"
dns:
  servers: [127.0.0.53, "127.0.0.1:5353"]
fetch:
  ca_file: /etc/ssl/lab.pem
  allow_private_addresses: true
cache:
  store: memory
zones:
  default: { tlsrpt: true }
  strict: { strict_testing: true }
`);
    expect(c.socketmap.listen).toHaveLength(2);
    expect(c.socketmap.unix_mode).toBe(0o600);
    expect(c.dns.servers).toEqual(['127.0.0.53', '127.0.0.1:5353']);
    expect(c.fetch).toMatchObject({ ca_file: '/etc/ssl/lab.pem', allow_private_addresses: true });
    expect(c.cache.store).toBe('memory');
    // Named zones inherit what the default zone sets.
    expect(c.zones.strict).toEqual({ strict_testing: true, tlsrpt: true, dane: 'auto' });
  });

  it.each<[string, string, RegExp]>([
    ['unknown section', 'listen: 1', /^listen: unknown section/],
    ['unknown key', 'fetch:\n  timeout: 5', /^fetch\.timeout: unknown key/],
    ['wrong type', 'fetch:\n  allow_private_addresses: "yes"', /^fetch\.allow_private_addresses: must be true or false/],
    ['negative number', 'resolver:\n  answer_deadline_ms: -1', /^resolver\.answer_deadline_ms: must be a whole number/],
    ['bad store', 'cache:\n  store: mysql', /^cache\.store: must be one of sqlite, memory, redis, postgres/],
    ['bad listen spec', 'socketmap:\n  listen: ["127.0.0.1:8461"]', /^socketmap\.listen\[0\]: must be tcp:HOST:PORT/],
    ['empty listen list', 'socketmap:\n  listen: []', /^socketmap\.listen: must have at least 1/],
    ['bad dns server', 'dns:\n  servers: [resolver.example]', /^dns\.servers\[0\]: must be an IP address/],
    ['bad zone key', 'zones:\n  postfix: { enforce_testing: true }', /^zones\.postfix\.enforce_testing: unknown key/],
    ['bad mode', 'socketmap:\n  unix_mode: "0999"', /^socketmap\.unix_mode: must be an octal mode/],
    ['not a mapping', '- a\n- b', /must be a mapping/],
    ['invalid YAML', 'fetch: [unclosed', /invalid YAML/],
    ['duplicate key', 'cache:\n  store: memory\ncache:\n  store: sqlite', /invalid YAML/],
  ])('%s is a one-line error naming the key', (_case, yaml, want) => {
    let message = '';
    try {
      parseConfig(yaml);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(want);
    expect(message).not.toContain('\n');
  });
});

describe('a single value where a list is expected is a one-item list', () => {
  it.each<[string, string, (c: Config) => unknown, unknown]>([
    ['http.listen', 'http: { listen: "tcp:127.0.0.1:8462" }', (c) => c.http.listen, ['tcp:127.0.0.1:8462']],
    ['socketmap.listen', 'socketmap: { listen: unix:/run/s.sock }', (c) => c.socketmap.listen, ['unix:/run/s.sock']],
    ['dns.servers', 'dns: { servers: 127.0.0.53 }', (c) => c.dns.servers, ['127.0.0.53']],
    ['a list stays a list', 'exim: { listen: ["tcp:127.0.0.1:8463"] }', (c) => c.exim.listen, ['tcp:127.0.0.1:8463']],
  ])('%s', (_key, yaml, get, want) => {
    expect(get(parseConfig(yaml))).toEqual(want);
  });

  it('a single bad value is named as item 0', () => {
    expect(() => parseConfig('http: { listen: localhost }')).toThrow(/^http\.listen\[0\]: must be tcp:HOST:PORT/);
  });

  it('is printed back as a list', () => {
    expect(parse(configToYaml(parseConfig('http: { listen: "tcp:127.0.0.1:9"}'))).http.listen).toEqual(['tcp:127.0.0.1:9']);
  });
});

const SRC = resolve(import.meta.dirname, '../../src');

describe('the schema declares every key once', () => {
  const keys = Object.entries(SCHEMA as unknown as Record<string, SectionSpec>).flatMap(([s, spec]) =>
    Object.entries(spec.keys).map(([k, v]) => [`${s}.${k}`, v] as const),
  );

  it.each(keys)('%s: a one-line description, and its default passes its own check', (key, spec) => {
    expect(spec.doc).toMatch(/^[^\n]{10,80}$/);
    const value = defaultOf(spec, { env: {}, uid: 1000, home: '/home/u' });
    expect(spec.type.check(spec.type.toYaml ? spec.type.toYaml(value) : value, key)).toEqual(value);
  });

  it('defaultConfig() is the schema defaults, and DEFAULTS reads the same values', () => {
    const c = defaultConfig();
    expect(c.resolver.max_pending).toBe(DEFAULTS.resolver.max_pending);
    expect(c.cache.store_max_bytes).toBe(DEFAULTS.cache.store_max_bytes);
    expect(c.socketmap.max_reply_bytes).toBe(100_000);
    expect(DEFAULTS.zone).toEqual(c.zones.default);
  });

  it('no other file under src/ declares a key with its default again (`key: value`)', () => {
    const files = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && f !== join('config', 'schema.ts'));
    const sources = files.map((f) => [f, readFileSync(join(SRC, f), 'utf8')] as const);
    const copies: string[] = [];
    for (const [key, spec] of keys) {
      const value = defaultOf(spec, { env: {}, uid: 1000, home: '/home/u' });
      if (typeof value !== 'number' && typeof value !== 'string') continue;
      const name = key.slice(key.indexOf('.') + 1);
      // 5000 may be written 5_000: match the digits with optional underscores between them.
      const literal = typeof value === 'number' ? String(value).split('').join('_?') : `['"]${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}['"]`;
      const copy = new RegExp(`\\b${name}: ${literal}\\b`);
      for (const [file, text] of sources) if (copy.test(text)) copies.push(`${file}: ${key}`);
    }
    expect(copies, 'declare defaults in src/config/schema.ts only').toEqual([]);
  });

  it('an empty section (`socketmap:` with nothing under it) keeps the defaults', () => {
    expect(parseConfig('socketmap:\nhttp:\n')).toEqual(defaultConfig());
  });
});

describe('redis_url passwords are masked in output', () => {
  it.each<[string, string]>([
    ['redis://:secret@127.0.0.1:6379/0', 'redis://:***@127.0.0.1:6379/0'],
    ['rediss://app:secret@redis.example:6380/1', 'rediss://app:***@redis.example:6380/1'],
    ['redis://secret@127.0.0.1', 'redis://***@127.0.0.1'], // no colon: user or password, clients differ
    ['redis://:p@ss@127.0.0.1', 'redis://:***@127.0.0.1'], // an unencoded @ in the password
    ['redis://127.0.0.1:6379/0', 'redis://127.0.0.1:6379/0'], // nothing to hide
  ])('%s', (url, want) => {
    expect(maskUrl(url)).toBe(want);
  });

  it('redactConfig masks cache.redis_url and changes nothing else', () => {
    const c = parseConfig('cache: { store: redis, redis_url: "redis://:hunter2@127.0.0.1:6379/0" }');
    const shown = redactConfig(c);
    expect(shown.cache.redis_url).toBe('redis://:***@127.0.0.1:6379/0');
    expect(c.cache.redis_url).toBe('redis://:hunter2@127.0.0.1:6379/0');
    expect({ ...shown, cache: { ...shown.cache, redis_url: c.cache.redis_url } }).toEqual(c);
  });

  it('a bad URL is refused without showing its password', () => {
    let message = '';
    try {
      parseConfig('cache: { redis_url: "http://:hunter2@127.0.0.1" }');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^cache\.redis_url: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(message).not.toContain('hunter2');
  });
});
