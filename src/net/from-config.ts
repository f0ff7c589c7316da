/**
 * The DNS client and the policy fetcher as the config describes them (`dns.*`, `fetch.*`): one
 * construction for the daemon's resolver and for `check`, so both see the world the same way.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { createDnsClient, type DnsClient, type MxLookup } from './dns.js';
import { createPolicyFetcher, type PolicyFetcher } from './policy-fetch.js';
import { proxyFromSetting } from './proxy.js';

export interface Network {
  dns: DnsClient & MxLookup;
  fetcher: PolicyFetcher;
  /** `fetch.ca_file`'s PEM (null when unset): `check` trusts the same extra roots for MX certificates. */
  extraCaPem: string | null;
}

/**
 * Throws ConfigError naming `fetch.ca_file` when that file is unusable, or `fetch.proxy` when it says
 * `env` and HTTPS_PROXY is not an http:// proxy URL.
 */
export function networkFromConfig(config: Config): Network {
  const dns = createDnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout_ms, tries: config.dns.tries });
  const extraCaPem = readCaFile(config.fetch.ca_file);
  const fetcher = createPolicyFetcher(dns, {
    extraCaPem,
    allowPrivateAddresses: config.fetch.allow_private_addresses,
    timeoutMs: config.fetch.timeout_ms,
    maxBytes: config.fetch.max_bytes,
    userAgent: config.fetch.user_agent,
    proxy: proxyFromSetting(config.fetch.proxy),
  });
  return { dns, fetcher, extraCaPem };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

/** Reads `fetch.ca_file` (PEM), also for `check`, which trusts the same extra roots for MX certificates. */
export function readCaFile(file: string | null): string | null {
  if (file === null) return null;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('fetch.ca_file', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError('fetch.ca_file', `${file} holds no PEM certificate`);
  // Parsed here, at start or reload: the fetcher builds its TLS context only at the first fetch.
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError('fetch.ca_file', `${file}: certificate ${i + 1} of ${blocks.length} cannot be read (${(err as Error).message})`);
    }
  }
  return pem;
}
