/** The YAML config: defaults, the documented keys, and one-line errors that name the key. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/defaults.js';

describe('config', () => {
  it('an empty file gives the embedded defaults', () => {
    const c = parseConfig('');
    expect(c.socketmap.listen).toEqual(['tcp:127.0.0.1:8461']);
    expect(c.cache.store).toBe('sqlite');
    expect(c.fetch.allow_private_addresses).toBe(false);
    expect(c.dns.servers).toEqual([]);
    expect(c.resolver.answer_deadline_ms).toBe(DEFAULTS.resolver.answer_deadline_ms);
    expect(c.zones.default).toEqual({ strict_testing: false, tlsrpt: false });
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
    expect(c.zones.strict).toEqual({ strict_testing: true, tlsrpt: true });
  });

  it.each<[string, string, RegExp]>([
    ['unknown section', 'listen: 1', /^listen: unknown section/],
    ['unknown key', 'fetch:\n  timeout: 5', /^fetch\.timeout: unknown key/],
    ['wrong type', 'fetch:\n  allow_private_addresses: "yes"', /^fetch\.allow_private_addresses: must be true or false/],
    ['negative number', 'resolver:\n  answer_deadline_ms: -1', /^resolver\.answer_deadline_ms: must be a whole number/],
    ['bad store', 'cache:\n  store: postgres', /^cache\.store: must be one of sqlite, memory, redis/],
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
