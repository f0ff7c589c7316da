/**
 * Every limit and default in one place. RFC-given values cite their section; the rest are our choices,
 * explained in docs/decisions.md. Units are in the names.
 */

/** Values fixed by RFC 8461; not configurable. */
export const RFC8461 = {
  /** §3.1: id is 1*32(ALPHA / DIGIT). */
  ID_MAX_LENGTH: 32,
  /** §3.2: max_age is 1*10(DIGIT), "up to 31557600". */
  MAX_AGE_MAX_SECONDS: 31_557_600,
  MAX_AGE_MAX_DIGITS: 10,
  /** §3.1 sts-version and §3.2 sts-policy-version-value: the only version defined. */
  VERSION: 'STSv1',
  /** §3.1 sts-ext-name and §3.2 sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
  EXT_NAME_MAX_LENGTH: 32,
  /** §3.3: "policy bodies ... SHOULD NOT exceed 64 KiB" and senders may discard larger ones. */
  POLICY_MAX_BYTES: 64 * 1024,
  /** §3.3: the well-known path, on port 443 of mta-sts.<domain>. */
  POLICY_PATH: '/.well-known/mta-sts.txt',
  POLICY_HOST_PREFIX: 'mta-sts.',
  POLICY_PORT: 443,
  /** §3.1: the TXT record lives at _mta-sts.<domain>. */
  TXT_PREFIX: '_mta-sts.',
  /** RFC 1035 §2.3.4 */
  DOMAIN_MAX_OCTETS: 253,
  LABEL_MAX_OCTETS: 63,
} as const;

/** Postfix socketmap(5) facts. */
export const SOCKETMAP = {
  /** Postfix's socketmap_max_reply default; a reply longer than this is an error on the Postfix side. */
  MAX_REPLY_BYTES: 100_000,
} as const;

/** Defaults for every configurable setting (docs/configuration.md lists them with their YAML keys). */
export const DEFAULTS = {
  socketmap: {
    listen: ['tcp:127.0.0.1:8461'],
    /** Unix socket mode: owner and group may connect, others not (Postfix runs in the postfix group). */
    unix_mode: 0o660,
    /** Owner and group of the unix socket file (name or id); null: the daemon's user and group. */
    unix_owner: null as string | null,
    unix_group: null as string | null,
    /** A request name + key is a domain of at most 253 octets plus a zone name: 1 KiB is generous. */
    max_request_bytes: 1024,
    /** Connections beyond this are closed at accept. Postfix keeps one per smtp(8) process. */
    max_connections: 2000,
    /** Postfix closes idle socketmap connections after ~100 s (ipc_idle); we allow a little more. */
    idle_timeout_ms: 300_000,
    /** A request started must be complete within this. */
    request_timeout_ms: 30_000,
    /** On SIGTERM (and for listeners a reload removes), open connections get this long to finish their replies. */
    shutdown_grace_ms: 5_000,
    /** Must match Postfix's socketmap_max_reply (default 100000): a longer reply is an error there. */
    max_reply_bytes: 100_000,
  },
  exim: {
    /** No Exim listener unless configured (docs/decisions.md "Exim"). */
    listen: [] as string[],
    /** Unix socket mode: owner and group (Exim's transports run as Debian-exim; give the socket that group). */
    unix_mode: 0o660,
    unix_owner: null as string | null,
    unix_group: null as string | null,
    /** `mx DOMAIN MXHOST`: two names of at most 253 octets each; 1 KiB is generous. */
    max_request_bytes: 1024,
    /** Connections beyond this are closed at accept; each Exim lookup holds one for a moment. */
    max_connections: 1000,
    /** The request line must arrive within this; Exim writes it at once after connecting. */
    request_timeout_ms: 10_000,
  },
  resolver: {
    /** Postfix's socketmap timeout is 100 s; we answer well inside it (from cache or NOTFOUND). */
    answer_deadline_ms: 10_000,
    /** How long "this domain has no policy" is remembered. */
    negative_ttl_ms: 5 * 60_000,
    /** A failed fetch for the same TXT id is not retried more often than this. */
    failure_retry_ms: 5 * 60_000,
    /**
     * RFC 8461 §5.1 asks senders to check the TXT id for changes; with a policy cached we do that in the
     * background at most this often per domain, so an answer never waits on DNS.
     */
    recheck_interval_ms: 10 * 60_000,
    /** Hot-tier capacity (policies and negative entries). */
    memory_entries: 100_000,
    /** Fetches running at once, across all domains. */
    max_concurrent_fetches: 64,
    /**
     * At most one policy fetch per domain per this interval, whatever max_age (0 included) or id churn
     * say: a policy host cannot make us fetch more often (docs/reliability.md).
     */
    min_fetch_interval_ms: 60_000,
    /** A DNS failure with nothing cached is remembered this long before the next try. */
    dns_failure_ttl_ms: 60_000,
    /**
     * Proactive refresh: every cached policy's TXT id is re-checked at least this often even when no
     * mail goes to the domain, so that the first message after a quiet spell is answered from cache.
     */
    refresh_interval_ms: 24 * 3600_000,
    /**
     * RFC 8461 §10.2 expects senders to refresh a policy before it expires; we refetch (same id or not)
     * once this fraction of max_age has passed, which keeps a live domain's policy from ever lapsing.
     */
    refetch_at_fraction: 0.5,
    /** How often the refresher looks for due entries, and how many it starts per look. */
    refresh_tick_ms: 60_000,
    refresh_batch: 200,
    /** Refreshes running at once (they also share max_concurrent_fetches with lookups). */
    refresh_concurrency: 8,
    /** Failure backoff per domain: failure_retry_ms doubled per consecutive failure, capped here. */
    failure_backoff_max_ms: 6 * 3600_000,
    /** Pending resolutions at once (tarpitting policy hosts); beyond it, answer from cache or NOTFOUND. */
    max_pending: 10_000,
  },
  dns: {
    servers: [] as string[],
    timeout_ms: 5_000,
    tries: 2,
  },
  fetch: {
    ca_file: null as string | null,
    allow_private_addresses: false,
    /** RFC 8461 §3.3 leaves the timeout to the sender; 10 s total for connect + headers + body. */
    timeout_ms: 10_000,
    max_bytes: RFC8461.POLICY_MAX_BYTES,
    user_agent: 'mta-sts-sidecar',
  },
  cache: {
    store: 'sqlite' as 'sqlite' | 'memory' | 'redis',
    path: '/var/lib/mta-sts-sidecar/cache.db',
    redis_url: 'redis://127.0.0.1:6379/0',
    /** Hot (in-process) tier bound in bytes, on top of memory_entries. */
    memory_max_bytes: 64 * 1024 * 1024,
    /** `memory` / `sqlite` store bound in bytes. */
    store_max_bytes: 256 * 1024 * 1024,
    /** Expired policies are pruned from every store this often (RFC 8461 §5.1: never used past max_age). */
    prune_interval_ms: 3600_000,
    /** SQLite: queued writes are committed in one transaction at most this long after the first one. */
    sqlite_flush_interval_ms: 50,
    /** SQLite: ... or at once when this many domains are queued. */
    sqlite_flush_max_entries: 500,
    /**
     * SQLite: how long a write waits on another process's lock (e.g. `cache` CLI) before that flush is
     * retried at the next interval. better-sqlite3 is synchronous, so this blocks the event loop: keep it small.
     */
    sqlite_busy_timeout_ms: 100,
    /** SQLite: after a failed write, the queued writes are retried this much later (and kept meanwhile). */
    sqlite_flush_retry_ms: 1_000,
    /** Redis: every key is namespaced; `<prefix><domain>` holds the JSON entry. */
    redis_key_prefix: 'mta-sts-sidecar:policy:',
    /** Redis: a key's TTL is (expiresAt - now) plus this, so Redis drops dead policies by itself. */
    redis_ttl_slack_ms: 60 * 60_000,
    /** Redis: TCP connect + handshake deadline. */
    redis_connect_timeout_ms: 1_000,
    /** Redis: a command without a reply by then is rejected (the resolver treats that as a miss). */
    redis_command_timeout_ms: 500,
    /** Redis: reconnect backoff doubles from the first value up to the second. */
    redis_reconnect_min_delay_ms: 50,
    redis_reconnect_max_delay_ms: 2_000,
    /** Redis: at start-up, wait at most this long for the first connection (then run without, reconnecting). */
    redis_open_wait_ms: 2_000,
    /** Redis: SCAN COUNT hint per round trip for list() and count(). */
    redis_scan_count: 500,
    /** Redis: a SCAN that has not reached the end after this many round trips is abandoned with an error. */
    redis_scan_max_rounds: 1_000_000,
  },
  zone: {
    /** RFC 8461 §5: testing policies are not enforced; a zone may opt in (postfix-mta-sts-resolver's strict_testing). */
    strict_testing: false,
    /** Append Postfix >= 3.10 TLSRPT attributes (policy_type=sts ...). An error on older Postfix. */
    tlsrpt: false,
  },
  log: {
    level: 'info' as string,
    /** `json`: one pino JSON object per line (for journald, Loki, ...); `pretty`: one readable line, for a terminal. */
    format: 'json' as 'json' | 'pretty',
  },
  http: {
    /** Prometheus /metrics, /healthz and /readyz; loopback only by default. `[]` turns it off. */
    listen: ['tcp:127.0.0.1:8462'],
    /** Connections to the HTTP endpoint at once (scrapers and probes keep few). */
    max_connections: 64,
  },
} as const;
