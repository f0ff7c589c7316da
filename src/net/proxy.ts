/**
 * Policy fetches through an HTTP CONNECT proxy (`fetch.proxy`, issue 11): which proxy, and which policy
 * hosts go around it. The TLS session to the policy host runs inside the tunnel, end to end, so the
 * proxy sees the host name and port and nothing else; certificate validation, SNI and every limit of
 * ./policy-fetch.ts are unchanged.
 *
 * The address filter cannot see where a proxy connects: the proxy resolves the host itself. So before a
 * host is sent through it, ./policy-fetch.ts resolves it with our own DNS and refuses (reason `address`)
 * a host that resolves to any non-public address (docs/decisions.md, "Fetching through a proxy").
 */
import { checkProxyUrl } from '../config/types.js';

export interface ProxySettings {
  /** `http://[user:password@]host:port` */
  url: string;
  /** Host names that go direct (NO_PROXY), lower case, without a leading dot; `*` means every host. */
  noProxy: string[];
}

/** `fetch.proxy` as written: a proxy URL, `env` (HTTPS_PROXY and NO_PROXY), or null (direct). */
export type ProxySetting = string | null;

/**
 * The proxy to use, or null for direct fetches. `env` reads HTTPS_PROXY (or https_proxy) and NO_PROXY
 * (or no_proxy), as curl and undici do; an unset HTTPS_PROXY means direct. Throws ConfigError naming
 * `fetch.proxy` for a URL that is not `http://host:port`.
 */
export function proxyFromSetting(setting: ProxySetting, env: NodeJS.ProcessEnv = process.env): ProxySettings | null {
  if (setting === null) return null;
  if (setting !== 'env') return { url: checkProxyUrl(setting, 'fetch.proxy'), noProxy: [] };
  const url = env.HTTPS_PROXY ?? env.https_proxy ?? '';
  if (url === '') return null;
  return { url: checkProxyUrl(url, 'fetch.proxy (HTTPS_PROXY)'), noProxy: parseNoProxy(env.NO_PROXY ?? env.no_proxy ?? '') };
}

/** NO_PROXY: comma- or space-separated host names or domain suffixes; ports and `*.` prefixes tolerated. */
export function parseNoProxy(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '')
    .map((e) => e.replace(/:\d+$/, '').replace(/^\*?\./, ''));
}

/** True when `host` goes direct: it is, or is under, a NO_PROXY entry (curl's rule), or the entry is `*`. */
export function bypassesProxy(host: string, noProxy: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return noProxy.some((e) => e === '*' || h === e || h.endsWith(`.${e}`));
}
