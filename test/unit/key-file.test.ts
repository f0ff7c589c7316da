/** Files that config keys name (src/config/key-file.ts): every problem is one ConfigError naming the key. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCaFile, readPasswordFile } from '../../src/config/key-file.js';

const dir = mkdtempSync(join(tmpdir(), 'key-file-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('readPasswordFile', () => {
  it.each<[string, string, string | RegExp]>([
    ['the first line, without its line ending', 'secret\r\nignored\n', 'secret'],
    ['an empty first line is refused', '\nsecret\n', /^cache\.redis_password_file: .* is empty/],
  ])('%s', (_case, text, want) => {
    const path = file('pw', text);
    if (typeof want === 'string') expect(readPasswordFile(path, 'cache.redis_password_file')).toBe(want);
    else expect(() => readPasswordFile(path, 'cache.redis_password_file')).toThrow(want);
  });

  it('a missing file names the key and the error code', () => {
    expect(() => readPasswordFile(join(dir, 'missing'), 'cache.postgres_password_file')).toThrow(/^cache\.postgres_password_file: cannot read .*ENOENT/);
  });
});

describe('readCaFile', () => {
  it.each<[string, string, RegExp]>([
    ['no PEM certificate at all', 'hello\n', /^cache\.redis_tls_ca_file: .* holds no PEM certificate/],
    ['a PEM block that is no certificate', '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n', /^cache\.redis_tls_ca_file: .*: certificate 1 of 1 cannot be read/],
  ])('refuses %s, naming the key', (_case, text, want) => {
    expect(() => readCaFile(file('ca.pem', text), 'cache.redis_tls_ca_file')).toThrow(want);
  });
});
