/**
 * The DNS client and the policy fetcher as the config describes them (`dns.*`, `fetch.*`): one
 * construction for the daemon's resolver and for `check`, so both see the world the same way.
 */
import { readCaFile } from '../config/key-file.js';
import type { Config } from '../config/schema.js';
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
  const extraCaPem = config.fetch.ca_file === null ? null : readCaFile(config.fetch.ca_file, 'fetch.ca_file');
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
