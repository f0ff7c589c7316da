/**
 * Value types of config keys: each checks one parsed YAML value, returns it normalised, and says in
 * words what it accepts (for the docs, which are derived from the schema). A wrong value is a
 * ConfigError naming the key path: `fetch.timeout_ms: must be a whole number of milliseconds from 100
 * to 86400000, got -1`. Hand-written rather than a schema library: docs/decisions.md "Config schema".
 */
import net from 'node:net';
import { ConfigError } from '../errors.js';
import { LISTEN_FORMS, ListenSpecError, parseListenSpec } from './listen-spec.js';
import { maskUrl } from './redact.js';

export interface Type<T> {
  /** Checks one parsed YAML value and returns it normalised; throws ConfigError naming `path`. */
  readonly check: (value: unknown, path: string) => T;
  /** What the file accepts, in words (docs): `1 to 65535`, `true or false`. */
  readonly accepts: string;
  /** The unit of a number (`ms`, `bytes`), for the docs. */
  readonly unit?: 'ms' | 'bytes';
  /** The value as written in YAML, where that differs from the parsed value (octal modes). */
  readonly toYaml?: (value: T) => unknown;
  /** The value with its secrets masked, for output and logs (redactConfig). */
  readonly redact?: (value: T) => T;
}

/** The longest duration any key takes: one day. */
export const MAX_DURATION_MS = 24 * 3600_000;

export function wholeNumber(min: number, max: number, unit?: 'ms' | 'bytes'): Type<number> {
  const words = unit === 'ms' ? ' of milliseconds' : unit === 'bytes' ? ' of bytes' : '';
  return {
    accepts: `${min} to ${max}`,
    unit,
    check: (v, path) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        throw new ConfigError(path, `must be a whole number${words} from ${min} to ${max}, got ${show(v)}`);
      }
      return v;
    },
  };
}

/** A duration in whole milliseconds, at most a day. */
export const ms = (min: number, max = MAX_DURATION_MS): Type<number> => wholeNumber(min, max, 'ms');
export const bytes = (min: number, max: number): Type<number> => wholeNumber(min, max, 'bytes');

/** A fraction in (0, 1]. */
export const fraction: Type<number> = {
  accepts: 'above 0, at most 1',
  check: (v, path) => {
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new ConfigError(path, `must be a number above 0 and at most 1, got ${show(v)}`);
    return v;
  },
};

export const bool: Type<boolean> = {
  accepts: 'true or false',
  check: (v, path) => {
    if (typeof v !== 'boolean') throw new ConfigError(path, `must be true or false, got ${show(v)}`);
    return v;
  },
};

export const text: Type<string> = {
  accepts: 'text',
  check: (v, path) => {
    if (typeof v !== 'string' || v === '') throw new ConfigError(path, `must be a non-empty string, got ${show(v)}`);
    return v;
  },
};

export const filePath: Type<string> = { ...text, accepts: 'a file path' };

export function oneOf<const T extends readonly string[]>(choices: T): Type<T[number]> {
  return {
    accepts: choices.join(', '),
    check: (v, path) => {
      if (typeof v !== 'string' || !choices.includes(v)) throw new ConfigError(path, `must be one of ${choices.join(', ')}, got ${show(v)}`);
      return v as T[number];
    },
  };
}

/**
 * A list; a single value where a list is expected is a one-item list (`listen: "tcp:127.0.0.1:8462"`),
 * as users of YAML configs expect. Items are named by index in errors (`socketmap.listen[1]`).
 */
export function list<T>(item: Type<T>, minItems = 0): Type<T[]> {
  return {
    accepts: `a list${minItems > 0 ? ` of at least ${minItems}` : ''}, each ${item.accepts}; a single one may be written without the list`,
    check: (v, path) => {
      if (v === null || typeof v === 'object') {
        if (!Array.isArray(v)) throw new ConfigError(path, `must be a list, got ${show(v)}`);
        if (v.length < minItems) throw new ConfigError(path, `must have at least ${minItems} item(s)`);
        return v.map((x, i) => item.check(x, `${path}[${i}]`));
      }
      return [item.check(v, `${path}[0]`)];
    },
  };
}

export function nullable<T>(inner: Type<T>, meaning: string): Type<T | null> {
  return {
    accepts: `${inner.accepts}, or null (${meaning})`,
    unit: inner.unit,
    check: (v, path) => (v === null ? null : inner.check(v, path)),
  };
}

/** Octal file mode, written `"0660"` (or 0o660 / 432 in YAML); printed back as `"0660"`. */
export const fileMode: Type<number> = {
  accepts: 'an octal mode such as "0660"',
  check: (v, path) => {
    if (typeof v === 'string' && /^0?[0-7]{3}$/.test(v)) return parseInt(v, 8);
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0o777) return v;
    throw new ConfigError(path, `must be an octal mode such as "0660", got ${show(v)}`);
  },
  toYaml: (mode) => `0${mode.toString(8)}`,
};

/** Highest user or group id; (uid_t)-1 means "unchanged" to chown(2). */
const MAX_ID = 0xfffffffe;
/** A user or group: a name as in passwd(5) / group(5), or a numeric id (YAML number or string). */
export const userOrGroup: Type<string> = {
  accepts: 'a name or a numeric id',
  check: (v, path) => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_ID) return String(v);
    if (typeof v === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(v)) return v;
    throw new ConfigError(path, `must be a user or group name, or a numeric id, got ${show(v)}`);
  },
};

/** A listen address, checked by the parser the listeners use (src/config/listen-spec.ts). */
export const listenSpec: Type<string> = {
  accepts: LISTEN_FORMS,
  check: (v, path) => {
    if (typeof v === 'string') {
      try {
        parseListenSpec(v, { allowPortZero: false });
        return v;
      } catch (err) {
        if (!(err instanceof ListenSpecError)) throw err;
        throw new ConfigError(path, `must be tcp:HOST:PORT or unix:/absolute/path, got ${show(v)}: ${err.why}`);
      }
    }
    throw new ConfigError(path, `must be tcp:HOST:PORT or unix:/absolute/path, got ${show(v)}`);
  },
};

/** A name server: `IP`, `IPv4:PORT` or `[IPv6]:PORT` (the forms node:dns setServers takes). */
export const dnsServer: Type<string> = {
  accepts: 'IP, IPv4:PORT or [IPv6]:PORT',
  check: (v, path) => {
    const s = typeof v === 'string' ? v : '';
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
    const ok = net.isIP(s) !== 0 || (m !== null && (m[1] !== undefined ? net.isIPv6(m[1]) : net.isIPv4(m[2]!)) && Number(m[3]) >= 1 && Number(m[3]) <= 65_535);
    if (!ok) throw new ConfigError(path, `must be an IP address or IP:PORT, got ${show(v)}`);
    return s;
  },
};

/** `v` as a URL, or undefined when it is not a string WHATWG URL parses. */
function urlOf(v: unknown): URL | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
}

/** A rejected URL value as an error shows it: its password masked. */
function showUrl(v: unknown): string {
  return typeof v === 'string' ? show(maskUrl(v)) : show(v);
}

/** A Redis URL (redis:// or rediss://); its password never appears in an error. */
export const redisUrl: Type<string> = {
  accepts: 'redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://...',
  check: (v, path) => {
    const url = urlOf(v);
    if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
      throw new ConfigError(path, `must be a redis:// or rediss:// URL with a host, got ${showUrl(v)}`);
    }
    return v as string;
  },
  redact: maskUrl,
};

/**
 * An HTTP CONNECT proxy URL, `http://[USER:PASSWORD@]HOST[:PORT]` (the tunnel carries our own TLS; an
 * https:// proxy, TLS in TLS, is not offered). Its password never appears in an error.
 */
export function checkProxyUrl(v: unknown, path: string): string {
  const url = urlOf(v);
  if (url === undefined || url.protocol !== 'http:' || url.hostname === '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new ConfigError(path, `must be an http://HOST:PORT proxy URL, "env" or null, got ${showUrl(v)}`);
  }
  return v as string;
}

/** `fetch.proxy`: a CONNECT proxy URL, `env` (HTTPS_PROXY and NO_PROXY), or null (direct). */
export const proxySetting: Type<string | null> = {
  accepts: 'http://[USER:PASSWORD@]HOST:PORT, env (HTTPS_PROXY and NO_PROXY), or null (direct)',
  check: (v, path) => (v === null || v === 'env' ? v : checkProxyUrl(v, path)),
  redact: (v) => (v === null ? v : maskUrl(v)),
};

/** A PostgreSQL URL (postgres:// or postgresql://); its password never appears in an error. */
export const postgresUrl: Type<string> = {
  accepts: 'postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?sslmode=...]',
  check: (v, path) => {
    const url = urlOf(v);
    if (url === undefined || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') || url.hostname === '') {
      throw new ConfigError(path, `must be a postgres:// or postgresql:// URL with a host, got ${showUrl(v)}`);
    }
    return v as string;
  },
  redact: maskUrl,
};

/** `HOST:PORT` or `[IPv6]:PORT` of a server (a Redis Sentinel, a Redis Cluster node). */
export const hostPort: Type<string> = {
  accepts: 'HOST:PORT or [IPv6]:PORT',
  check: (v, path) => {
    const m = typeof v === 'string' ? /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(v) : null;
    if (m === null || Number(m[3]) < 1 || Number(m[3]) > 65_535 || (m[1] !== undefined && !net.isIPv6(m[1]))) {
      throw new ConfigError(path, `must be HOST:PORT or [IPv6]:PORT, got ${show(v)}`);
    }
    return v as string;
  },
};

/** A value as shown in an error: JSON, cut to 60 characters. */
export function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}
