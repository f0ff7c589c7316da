/**
 * Files that config keys name (`fetch.ca_file`, `cache.redis_tls_ca_file`, the password files): read
 * when the daemon starts or reloads, and anything wrong with them is a ConfigError naming the key, so a
 * daemon told to trust a CA or use a password never quietly goes on without it.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

function readKeyFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The first line of a password file (without its line ending); an empty one is refused. */
export function readPasswordFile(path: string, key: string): string {
  const password = readKeyFile(path, key).split(/\r?\n/, 1)[0]!;
  if (password === '') throw new ConfigError(key, `${path} is empty (the password is its first line)`);
  return password;
}

/**
 * CA certificates in PEM, each parsed here: a TLS context built from them later (the policy fetcher's at
 * its first fetch) must not be the first to find one broken.
 */
export function readCaFile(path: string, key: string): string {
  const pem = readKeyFile(path, key);
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(key, `${path} holds no PEM certificate`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(key, `${path}: certificate ${i + 1} of ${blocks.length} cannot be read (${(err as Error).message})`);
    }
  }
  return pem;
}
