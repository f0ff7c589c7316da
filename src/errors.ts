/**
 * The closed set of reasons a policy resolution can fail. Each class flows unchanged from the place the
 * failure happens (src/net, src/sts) up to logs, metrics and `query` output, so an operator can count and
 * grep them. Add a class only together with its line in docs/errors.md.
 */
export const REASONS = {
  /** DNS lookup failed (SERVFAIL, timeout, refused): retry later; a cached policy stays in force. */
  dns: 'DNS lookup failed',
  /** The _mta-sts TXT record set is unusable (syntax, several STSv1 records): treated as no policy. */
  txt: 'invalid _mta-sts TXT record',
  /** The policy host resolved only to addresses we refuse to connect to (loopback, private, ...). */
  address: 'policy host address refused',
  /** TCP connection to the policy host failed (refused, reset, unreachable). */
  connect: 'connection to policy host failed',
  /** TLS handshake or certificate validation failed. */
  tls: 'TLS or certificate failure',
  /** The policy host answered with a status other than 200 (redirects included: RFC 8461 §3.3). */
  'http-status': 'unexpected HTTP status',
  /** The policy host answered 200 with a media type other than text/plain. */
  'content-type': 'unexpected content type',
  /** The policy body exceeded the size limit. */
  size: 'policy too large',
  /** The fetch did not complete within its deadline. */
  timeout: 'timed out',
  /** The policy body does not follow the RFC 8461 §3.2 grammar. */
  parse: 'invalid policy',
  /**
   * An unexpected exception inside a resolution (a bug, not the world): treated like any failure (a
   * cached policy stays, otherwise no policy), logged at error level with its stack.
   */
  internal: 'internal error',
} as const;

export type ReasonClass = keyof typeof REASONS;

/** A failure of policy discovery or fetch, carrying its reason class. */
export class StsError extends Error {
  override readonly name = 'StsError';
  constructor(
    readonly reason: ReasonClass,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStsError(err: unknown): err is StsError {
  return err instanceof StsError;
}

/** A configuration problem, naming the key path that is wrong (`fetch.timeout_ms: must be ...`). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly path: string,
    /** What is wrong, without the path (for a caller that names the setting its own way). */
    readonly problem: string,
  ) {
    super(path ? `${path}: ${problem}` : problem);
  }
}
