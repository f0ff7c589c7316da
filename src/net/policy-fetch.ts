/**
 * RFC 8461 §3.3: fetch `https://mta-sts.<domain>/.well-known/mta-sts.txt` strictly: validated certificate
 * for the policy host (SNI; subjectAltName DNS-IDs only, the one identity rule of ./identity.ts),
 * TLS >= 1.2, no redirects, 200 only, text/plain, a size cap enforced while streaming, one total
 * deadline, and no HTTP cache. Optionally through an HTTP CONNECT proxy (./proxy.ts): the same TLS rules
 * and limits inside the tunnel.
 */
import type { TLSSocket } from 'node:tls';
import type { LookupAddress, LookupOneOptions, LookupAllOptions } from 'node:dns';
import type { buildConnector, Dispatcher, ProxyAgent } from 'undici';
import { StsError } from '../errors.js';
import { RFC8461 } from '../sts/rfc8461.js';
import type { DnsClient } from './dns.js';
import { isPublicAddress } from './address-filter.js';
import { classifyFetchError } from './fetch-errors.js';
import { checkCertificateIdentity } from './identity.js';
import { bypassesProxy, type ProxySettings } from './proxy.js';

export interface PolicyFetchOptions {
  /** Extra trusted roots (PEM), added to the system roots. */
  extraCaPem: string | null;
  allowPrivateAddresses: boolean;
  timeoutMs: number;
  maxBytes: number;
  userAgent: string;
  /** Fetch through this CONNECT proxy (hosts in its noProxy list go direct); null: always direct. */
  proxy?: ProxySettings | null;
}

export interface FetchedPolicy {
  /** The body, decoded as UTF-8. */
  text: string;
}

export interface PolicyFetcher {
  fetch(domain: string): Promise<FetchedPolicy>;
  close(): Promise<void>;
}

type LookupCallback = (err: Error | null, address: string | LookupAddress[], family?: number) => void;

export function createPolicyFetcher(dns: DnsClient, options: PolicyFetchOptions): PolicyFetcher {
  // The policy host's addresses come from our DNS view, filtered before any connection is attempted.
  const lookup = (hostname: string, opts: LookupOneOptions | LookupAllOptions, cb: LookupCallback) => {
    dns.addresses(hostname).then(
      (all) => {
        const usable = options.allowPrivateAddresses ? all : all.filter((a) => isPublicAddress(a.address));
        if (usable.length === 0) {
          const list = all.map((a) => a.address).join(', ');
          return cb(new StsError('address', `${hostname} resolves only to non-public addresses (${list})`), '');
        }
        if ((opts as LookupAllOptions).all) return cb(null, usable);
        cb(null, usable[0]!.address, usable[0]!.family);
      },
      (err: unknown) => cb(err as Error, ''),
    );
  };

  /**
   * The proxy resolves the policy host itself, out of the address filter's sight: ask our own DNS first
   * and send no host through the proxy that resolves to any non-public address (a name that points into
   * the proxy's network, e.g. its metadata service or an internal host).
   */
  const checkBeforeProxy = async (host: string): Promise<void> => {
    if (options.allowPrivateAddresses) return;
    const all = await dns.addresses(host);
    const inner = all.filter((a) => !isPublicAddress(a.address));
    if (all.length === 0 || inner.length > 0) {
      const list = all.map((a) => a.address).join(', ') || 'none';
      throw new StsError('address', `${host} resolves to non-public addresses (${list}): not sent through the proxy`);
    }
  };

  // undici (about 19 MiB of RSS imported alone), the TLS context and its trusted roots are made at the first
  // fetch, once: a daemon with a warm cache fetches nothing until a miss or a refresh is due (issue 12,
  // BENCHMARKS.md "Footprint"). fetch.ca_file was already read and each of its certificates parsed at start
  // (src/config/key-file.ts readCaFile), so a bad file still stops the start.
  const build = async (): Promise<{ agent: Dispatcher; proxied: Dispatcher | null; request: typeof import('undici').request }> => {
    const [{ Agent, buildConnector, ProxyAgent, request }, { createSecureContext, rootCertificates }] = await Promise.all([import('undici'), import('node:tls')]);
    const ca = options.extraCaPem ? [...rootCertificates, options.extraCaPem] : [...rootCertificates];
    // One TLS context for every fetch. Building one parses every trusted root: tens of milliseconds of CPU
    // on the event loop, which per connection stalled the daemon when many domains were new at once
    // (BENCHMARKS.md, scenario 3). Sharing it shares no sessions: a client session is only resumed when one
    // is passed to tls.connect, and we pass none (maxCachedSessions: 0).
    const secureContext = createSecureContext({ ca, minVersion: 'TLSv1.2' });
    const tlsOptions = {
      secureContext,
      ca,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      // RFC 8461 §3.3 via RFC 9525: the policy host must be a subjectAltName DNS-ID. Node's own check falls
      // back to the subject CN and accepts partial wildcards; ours does neither (src/net/identity.ts).
      checkServerIdentity: checkCertificateIdentity,
      // A resumed session would skip certificate validation on a later fetch: keep none.
      maxCachedSessions: 0,
      timeout: options.timeoutMs,
    } as const;
    const inner = buildConnector({ ...tlsOptions, lookup } as buildConnector.BuildOptions);

    // Check the address actually connected to as well: DNS may change between lookups.
    const connect: buildConnector.connector = (opts, callback) => {
      inner(opts, (err, socket) => {
        if (err || !socket) return callback(err ?? new Error('no socket'), null);
        const remote = socket.remoteAddress ?? '';
        if (!options.allowPrivateAddresses && !isPublicAddress(remote)) {
          socket.destroy();
          return callback(new StsError('address', `connected to non-public address ${remote}`), null);
        }
        callback(null, socket as TLSSocket);
      });
    };

    const limits = {
      // A hostile host gets a bounded number of sockets from us, and none kept afterwards.
      connections: 2,
      pipelining: 0,
      keepAliveTimeout: 1,
      keepAliveMaxTimeout: 1,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      maxResponseSize: options.maxBytes,
    };
    const agent = new Agent({ connect, ...limits });
    // Through the proxy, the TLS session to the policy host is made inside the CONNECT tunnel with the same
    // options (roots, TLS >= 1.2, our identity check, no session reuse); SNI is the policy host's name.
    const proxied: Dispatcher | null = proxy
      ? new ProxyAgent({ uri: proxy.url, requestTls: tlsOptions, proxyTls: { timeout: options.timeoutMs }, ...limits } as ProxyAgent.Options)
      : null;
    return { agent, proxied, request };
  };
  let built: ReturnType<typeof build> | undefined;
  const proxy = options.proxy ?? null;
  const dispatcherFor = async (host: string): Promise<{ dispatcher: Dispatcher; request: typeof import('undici').request }> => {
    const { agent, proxied, request } = await (built ??= build());
    if (proxied === null || bypassesProxy(host, proxy!.noProxy)) return { dispatcher: agent, request };
    await checkBeforeProxy(host);
    return { dispatcher: proxied, request };
  };

  return {
    async fetch(domain) {
      const host = RFC8461.POLICY_HOST_PREFIX + domain;
      const url = `https://${host}${RFC8461.POLICY_PATH}`;
      const signal = AbortSignal.timeout(options.timeoutMs);
      try {
        const { dispatcher, request } = await dispatcherFor(host);
        const res = await request(url, {
          dispatcher,
          method: 'GET',
          signal,
          // RFC 8461 §3.3: "HTTP caching MUST NOT be used" (and undici has no cache unless asked).
          headers: { 'user-agent': options.userAgent, accept: 'text/plain', 'cache-control': 'no-cache' },
        });
        try {
          // RFC 8461 §3.3: "Senders MUST NOT follow HTTP redirects", and only 200 carries a policy.
          if (res.statusCode !== 200) {
            const where = res.headers.location ? ` (redirect to ${String(res.headers.location)})` : '';
            throw new StsError('http-status', `${url}: HTTP ${res.statusCode}${where}`);
          }
          checkContentType(url, res.headers['content-type']);
          const declared = Number(res.headers['content-length']);
          if (Number.isFinite(declared) && declared > options.maxBytes) {
            throw new StsError('size', `${url}: Content-Length ${declared} exceeds ${options.maxBytes} bytes`);
          }
          const body = await readCapped(res.body, options.maxBytes, url);
          return { text: decodeUtf8(body, url) };
        } finally {
          // Unread bodies (errors, caps) are dropped with the connection; the abort is expected, not news.
          res.body.on('error', () => {});
          res.body.destroy();
        }
      } catch (err) {
        throw classifyFetchError(err, url, signal);
      }
    },
    close: async () => {
      if (built === undefined) return;
      const { agent, proxied } = await built;
      await Promise.all([agent.close(), proxied?.close()]);
    },
  };
}

/** RFC 8461 §3.3: media type text/plain; parameters such as charset are allowed. */
function checkContentType(url: string, header: string | string[] | undefined): void {
  const value = Array.isArray(header) ? header[0] : header;
  const media = (value ?? '').split(';')[0]!.trim().toLowerCase();
  if (media !== 'text/plain') {
    throw new StsError('content-type', `${url}: Content-Type ${value === undefined ? '(none)' : JSON.stringify(value)}, want text/plain`);
  }
}

async function readCapped(body: AsyncIterable<Buffer>, maxBytes: number, url: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    // Enforced while streaming: a host sending forever is cut off at the cap, not buffered.
    if (total > maxBytes) throw new StsError('size', `${url}: body exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

// ignoreBOM: a leading UTF-8 BOM is handed to the policy parser, which drops it as a named deviation
// (src/sts/policy.ts, docs/decisions.md) so that it is counted and `check` can tell the domain owner.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(body: Buffer, url: string): string {
  try {
    return utf8.decode(body);
  } catch {
    throw new StsError('parse', `${url}: body is not valid UTF-8`);
  }
}
