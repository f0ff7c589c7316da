/** The DNSSEC stub's settings: server addresses as dns.servers writes them, resolv.conf, what counts as local. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StsError } from '../../src/errors.js';
import { isLocalServer, parseServer, resolvConfServers } from '../../src/net/secure-dns.js';

describe('parseServer: dns.servers entries', () => {
  it.each([
    ['127.0.0.1', { host: '127.0.0.1', port: 53, family: 4 }],
    ['127.0.0.1:5353', { host: '127.0.0.1', port: 5353, family: 4 }],
    ['::1', { host: '::1', port: 53, family: 6 }],
    ['[::1]', { host: '::1', port: 53, family: 6 }],
    ['[2001:db8::1]:5353', { host: '2001:db8::1', port: 5353, family: 6 }],
  ])('%s', (text, want) => {
    expect(parseServer(text)).toEqual(want);
  });
  it.each(['resolver.example', '127.0.0.1:0', '127.0.0.1:65536', '[::1]:x', ''])('%j is refused', (text) => {
    expect(() => parseServer(text)).toThrow(StsError);
  });
});

describe('resolvConfServers', () => {
  const file = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'resolv-'));
    writeFileSync(join(dir, 'resolv.conf'), text);
    return { path: join(dir, 'resolv.conf'), done: () => rmSync(dir, { recursive: true }) };
  };
  it('the nameserver lines, at most three (resolv.conf(5) MAXNS), scopes dropped, junk skipped', () => {
    const f = file('# c\nsearch example\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n');
    try {
      expect(resolvConfServers(f.path).map((s) => s.host)).toEqual(['127.0.0.53', 'fe80::1', '10.0.0.1']);
    } finally {
      f.done();
    }
  });
  it('none named, or no file: the local host (resolv.conf(5))', () => {
    expect(resolvConfServers('/nonexistent/resolv.conf')).toEqual([{ host: '127.0.0.1', port: 53, family: 4 }]);
  });
});

it('isLocalServer: loopback only', () => {
  expect([parseServer('127.0.0.1'), parseServer('127.53.0.1'), parseServer('::1'), parseServer('10.0.0.1'), parseServer('2001:db8::1')].map(isLocalServer)).toEqual([
    true,
    true,
    true,
    false,
    false,
  ]);
});
