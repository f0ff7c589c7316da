/**
 * Listen addresses: one parser (src/config/listen-spec.ts) for `config check` and for the listeners
 * `serve` binds, so that nothing the check accepts is refused at bind time (issue 13).
 */
import { describe, expect, it } from 'vitest';
import { parseListenSpec, UNIX_PATH_MAX_BYTES } from '../../src/config/listen-spec.js';
import { parseListenSpec as listenersParse } from '../../src/server/listen.js';
import { parseConfig } from '../../src/config/load.js';

const inConfig = { allowPortZero: false };

describe('parseListenSpec', () => {
  it.each<[string, object, string]>([
    ['tcp:127.0.0.1:8461', { kind: 'tcp', host: '127.0.0.1', port: 8461 }, 'IPv4 address'],
    ['tcp:[::1]:8461', { kind: 'tcp', host: '::1', port: 8461 }, 'IPv6 in brackets, RFC 3986 §3.2.2'],
    ['tcp:localhost:1', { kind: 'tcp', host: 'localhost', port: 1 }, 'host name, RFC 1123 §2.1'],
    ['tcp:mail-1.example.com:65535', { kind: 'tcp', host: 'mail-1.example.com', port: 65535 }, 'highest port'],
    ['tcp:0.0.0.0:8461', { kind: 'tcp', host: '0.0.0.0', port: 8461 }, 'any address'],
    ['unix:/run/mta-sts-sidecar/socketmap.sock', { kind: 'unix', path: '/run/mta-sts-sidecar/socketmap.sock' }, 'absolute path'],
    [`unix:/${'d'.repeat(UNIX_PATH_MAX_BYTES - 1)}`, { kind: 'unix' }, 'a path of exactly 107 bytes fits sun_path'],
  ])('accepts %s (%s)', (spec, want) => {
    expect(parseListenSpec(spec, inConfig)).toMatchObject({ spec, ...want });
  });

  it.each<[string, RegExp, string]>([
    ['tcp:127.0.0.1:99999', /bad port "99999" \(1 to 65535\)/, 'port above 16 bits (issue 13)'],
    ['tcp:127.0.0.1:65536', /bad port "65536"/, 'port above 16 bits'],
    ['tcp:127.0.0.1:0', /bad port "0" \(1 to 65535\)/, 'port 0: the MTA could not find it'],
    ['tcp:bad_host:8461', /bad host "bad_host"/, 'underscore: not a host name, RFC 1123 §2.1 (issue 13)'],
    ['tcp:-a.example:8461', /bad host/, 'label starting with a hyphen'],
    ['tcp:a-.example:8461', /bad host/, 'label ending with a hyphen'],
    ['tcp:a..example:8461', /bad host/, 'empty label'],
    ['tcp:127.0.0.256:8461', /bad host/, 'all-numeric last label is not a name, RFC 3696 §2'],
    [`tcp:${'a'.repeat(64)}.example:8461`, /bad host/, 'label over 63 octets, RFC 1035 §2.3.4'],
    [`unix:/${'d'.repeat(UNIX_PATH_MAX_BYTES)}`, /longer than 107 bytes/, 'over sun_path, unix(7) (issue 13)'],
    [`unix:/${'é'.repeat(54)}`, /longer than 107 bytes/, 'bytes, not characters'],
    ['unix:run/s.sock', /must be absolute/, 'relative path'],
    ['unix:', /empty path/, 'no path'],
    ['127.0.0.1:8461', /unknown scheme/, 'no scheme'],
    ['inet:127.0.0.1:8461', /unknown scheme/, "Postfix's spelling is not ours"],
    ['tcp::8461', /empty host/, 'no host'],
    ['tcp:::1:8461', /IPv6 addresses must be in brackets/, 'bare IPv6'],
    ['tcp:[example.com]:8461', /not an IPv6 address/, 'brackets around a name'],
    ['tcp:127.0.0.1:84a', /bad port "84a"/, 'port not digits'],
  ])('refuses %j: %s', (spec, why) => {
    expect(() => parseListenSpec(spec, inConfig)).toThrow(why);
  });

  it('port 0 (any free port) is for programs, not configs', () => {
    expect(parseListenSpec('tcp:127.0.0.1:0')).toMatchObject({ port: 0 });
  });

  it('is the parser the listeners use', () => {
    expect(listenersParse).toBe(parseListenSpec);
  });
});

describe('listen addresses in the config: the inputs of issue 13, refused naming the key', () => {
  it.each<[string, RegExp]>([
    ['socketmap: { listen: ["tcp:127.0.0.1:99999"] }', /^socketmap\.listen\[0\]: must be tcp:HOST:PORT or unix:\/absolute\/path, got "tcp:127\.0\.0\.1:99999": bad port "99999" \(1 to 65535\)$/],
    ['socketmap: { listen: ["tcp:127.0.0.1:8461", "tcp:relay_1.example:8461"] }', /^socketmap\.listen\[1\]: .*: bad host "relay_1\.example"/],
    [`exim: { listen: ["unix:/${'d'.repeat(110)}"] }`, /^exim\.listen\[0\]: .*: the path is longer than 107 bytes/],
    ['http: { listen: "tcp:127.0.0.1:0" }', /^http\.listen\[0\]: .*: bad port "0"/],
  ])('%s', (yaml, want) => {
    expect(() => parseConfig(yaml)).toThrow(want);
  });
});
